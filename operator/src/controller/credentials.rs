//! Secrets the operator makes up: the registry's token signing key and
//! robot passwords (random, so not in the pure `render`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::Error;

/// A new ECDSA P-256 private key, PKCS#8 PEM.
pub fn generate_signing_key() -> Result<String, Error> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let b64 = B64.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// 32 random bytes, hex.
pub fn random_secret() -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut buf = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_is_pem() {
        let pem = generate_signing_key().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert_ne!(pem, generate_signing_key().unwrap());
    }

    #[test]
    fn robot_secrets_are_64_hex() {
        let s = random_secret().unwrap();
        assert_eq!(s.len(), 64);
        assert!(s.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(s, random_secret().unwrap());
    }
}
