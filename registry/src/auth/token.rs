//! The token service of the Docker token-auth flow: signed JWTs (ES256)
//! whose `access` claim lists what the bearer may do to which repository.
//! The signing key comes from a PEM file (PKCS#8 or SEC1, P-256), or is
//! generated on first start and persisted there.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("token is invalid: {0}")]
    Invalid(String),
}

/// One grant in a token: `repository` `name` with `actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user or robot name; empty for anonymous.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<Access>,
}

impl Claims {
    /// Whether the token grants `action` on repository `name`.
    pub fn grants(&self, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository" && a.name == name && a.actions.iter().any(|x| x == action)
        })
    }
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub issuer: String,
    pub service: String,
    pub expiry: Duration,
}

fn key_error(path: &Path, message: impl std::fmt::Display) -> TokenError {
    TokenError::Key {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn parse_key(path: &Path, pem: &str) -> Result<SigningKey, TokenError> {
    SigningKey::from_pkcs8_pem(pem)
        .or_else(|_| p256::SecretKey::from_sec1_pem(pem).map(SigningKey::from))
        .map_err(|_| key_error(path, "not a P-256 private key in PKCS#8 or SEC1 PEM"))
}

/// Reads the key at `path`, or creates one there (mode 0600) if there is none.
fn load_or_create_key(path: &Path) -> Result<SigningKey, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => parse_key(path, &pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = loop {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| key_error(path, e))?;
                if let Ok(k) = SigningKey::from_bytes(&bytes.into()) {
                    break k;
                }
            };
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| key_error(path, e))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| key_error(path, e))?;
            }
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&tmp).map_err(|e| key_error(path, e))?;
                f.write_all(pem.as_bytes())
                    .map_err(|e| key_error(path, e))?;
                f.sync_all().map_err(|e| key_error(path, e))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| key_error(path, e))?;
            tracing::info!(path = %path.display(), "generated a token signing key");
            Ok(key)
        }
        Err(e) => Err(key_error(path, e)),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenService {
    /// Checks the key at `path` without creating it: a key that is there
    /// must read; a missing one is made at start, where its directory is.
    pub fn check_key(path: &Path) -> Result<(), TokenError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => parse_key(path, &pem).map(drop),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(key_error(path, e)),
        }
    }

    pub fn new(
        key_path: &Path,
        issuer: &str,
        service: &str,
        expiry: Duration,
    ) -> Result<Self, TokenError> {
        let key = load_or_create_key(key_path)?;
        let private = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| key_error(key_path, e))?;
        let public = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| key_error(key_path, e))?;
        let encoding =
            EncodingKey::from_ec_pem(private.as_bytes()).map_err(|e| key_error(key_path, e))?;
        let decoding =
            DecodingKey::from_ec_pem(public.as_bytes()).map_err(|e| key_error(key_path, e))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[service]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        // A token not valid yet (nbf ahead, beyond the leeway) is refused.
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(Self {
            encoding,
            decoding,
            validation,
            issuer: issuer.to_string(),
            service: service.to_string(),
            expiry,
        })
    }

    /// Signs a token for `subject` granting `access`.
    pub fn issue(
        &self,
        subject: &str,
        access: Vec<Access>,
    ) -> Result<(String, Claims), TokenError> {
        self.issue_for(subject, access, self.expiry)
    }

    /// [`TokenService::issue`], valid for `expiry`.
    pub fn issue_for(
        &self,
        subject: &str,
        access: Vec<Access>,
        expiry: Duration,
    ) -> Result<(String, Claims), TokenError> {
        let iat = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: self.service.clone(),
            exp: iat + expiry.as_secs(),
            nbf: iat.saturating_sub(1),
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        Ok((token, claims))
    }

    /// Checks signature, expiry, audience and issuer.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_and_reject() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let svc = TokenService::new(&path, "berth", "registry", Duration::from_secs(60)).unwrap();
        let access = vec![Access {
            kind: "repository".into(),
            name: "a/b".into(),
            actions: vec!["pull".into()],
        }];
        let (token, _) = svc.issue("alice", access).unwrap();
        let claims = svc.verify(&token).unwrap();
        assert!(claims.grants("a/b", "pull"));
        assert!(!claims.grants("a/b", "push"));
        assert!(!claims.grants("a/c", "pull"));

        // The persisted key is reused; another key does not verify.
        let again = TokenService::new(&path, "berth", "registry", Duration::from_secs(60)).unwrap();
        assert!(again.verify(&token).is_ok());
        let other = TokenService::new(
            &dir.path().join("other.pem"),
            "berth",
            "registry",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(other.verify(&token).is_err());
        let wrong_aud =
            TokenService::new(&path, "berth", "elsewhere", Duration::from_secs(60)).unwrap();
        assert!(wrong_aud.verify(&token).is_err());

        // Tampering with the payload breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1].replace_range(0..4, "eyJh");
        assert!(svc.verify(&parts.join(".")).is_err());

        let expired =
            TokenService::new(&path, "berth", "registry", Duration::from_secs(0)).unwrap();
        let mut claims = expired.issue("alice", vec![]).unwrap().1;
        claims.exp = now() - 3600;
        let old =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &svc.encoding).unwrap();
        assert!(svc.verify(&old).is_err());

        // Not valid for another hour: refused.
        let mut claims = svc.issue("alice", vec![]).unwrap().1;
        claims.nbf = now() + 3600;
        let early =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &svc.encoding).unwrap();
        assert!(svc.verify(&early).is_err());
    }
}
