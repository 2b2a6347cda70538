//! Kubernetes quantities (`10Gi`, `500M`, `1e3`) as byte counts, to compare
//! claim sizes and to write quotas in bytes.

/// Bytes of a quantity, or why it is not one.
pub fn parse_bytes(q: &str) -> Result<u128, String> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    if num.is_empty() {
        return Err(format!("{q:?} is not a quantity (no number)"));
    }
    let mult: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "E" => 1000u128.pow(6),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..]
                .parse()
                .map_err(|_| format!("{q:?} is not a quantity (bad exponent)"))?;
            if exp > 30 {
                return Err(format!("{q:?} is too large"));
            }
            10u128.pow(exp)
        }
        _ => {
            return Err(format!(
                "{q:?} is not a quantity (unknown suffix {suffix:?}; use Ki, Mi, Gi, Ti, k, M, G, T)"
            ));
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(format!("{q:?} is not a quantity"));
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse()
            .map_err(|_| format!("{q:?} is not a quantity"))?
    };
    let mut bytes = int
        .checked_mul(mult)
        .ok_or_else(|| format!("{q:?} is too large"))?;
    if !frac.is_empty() {
        let digits = frac.len().min(18) as u32;
        let f: u128 = frac[..digits as usize]
            .parse()
            .map_err(|_| format!("{q:?} is not a quantity"))?;
        bytes += f * mult / 10u128.pow(digits);
    }
    Ok(bytes)
}

/// A quota in bytes as the registry holds it (a u64): a quantity that is
/// larger is refused, never truncated.
pub fn quota_bytes(q: &str) -> Result<u64, String> {
    let bytes = parse_bytes(q)?;
    u64::try_from(bytes).map_err(|_| {
        format!(
            "{:?} is too large: a quota is at most {} bytes (16Ei - 1)",
            q.trim(),
            u64::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, quota_bytes};

    #[test]
    fn quantities() {
        assert_eq!(parse_bytes("10Gi"), Ok(10 << 30));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_bytes("1e3"), Ok(1000));
        assert_eq!(parse_bytes("123"), Ok(123));
        assert!(parse_bytes("10GB").is_err());
        assert!(parse_bytes("Gi").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn quotas_fit_the_registry_or_are_refused() {
        assert_eq!(quota_bytes("20Gi"), Ok(20 << 30));
        assert_eq!(quota_bytes("15Ei"), Ok(15 << 60));
        assert_eq!(quota_bytes("18446744073709551615"), Ok(u64::MAX));
        let err = quota_bytes("16Ei").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        assert!(quota_bytes("18446744073709551616").is_err());
        assert!(quota_bytes("1e30").is_err());
        assert!(quota_bytes("10GB").is_err());
    }
}
