//! The web UI's cookies: the session (a signed token from the session token
//! service, HttpOnly) and the CSRF token every form carries (double submit:
//! a random value in a cookie that only pages of this origin can put into a
//! form). Both cookies are `SameSite=Strict`, so another site's form never
//! sends them. Pure: parsing and building header values.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "berth_session";
pub const CSRF_COOKIE: &str = "berth_csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site;
/// `Secure` when the registry is reached over HTTPS. `max_age` 0 deletes.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A fresh CSRF token (128 random bits, hex).
pub fn new_csrf_token() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness there is no safe token: a UUIDv4 draws from the
    // same source, so this only fails where that would.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = *uuid::Uuid::new_v4().as_bytes();
    }
    hex::encode(bytes)
}

/// Whether a cookie value can be a CSRF token we made (32 hex digits).
pub fn is_csrf_token(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a form post was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrfError {
    #[error("the form came from another site ({0})")]
    Origin(String),
    #[error("the form is stale or did not come from this site; reload the page and try again")]
    Token,
}

/// Checks a form post: its `Origin`, when the browser sends one, is this
/// registry (`base`, e.g. `http://host:5000`, or the public URL), and the
/// form's token is the cookie's.
pub fn check_form(
    headers: &HeaderMap,
    bases: &[String],
    form_token: Option<&str>,
) -> Result<(), CsrfError> {
    if let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) {
        let origin = origin.trim_end_matches('/');
        if !bases
            .iter()
            .any(|b| b.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return Err(CsrfError::Origin(origin.to_string()));
        }
    }
    let cookie = cookie(headers, CSRF_COOKIE).filter(|c| is_csrf_token(c));
    match (cookie, form_token) {
        (Some(c), Some(f)) if bool::from(c.as_bytes().ct_eq(f.as_bytes())) => Ok(()),
        _ => Err(CsrfError::Token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[
            ("cookie", "a=1; berth_csrf=abc"),
            ("cookie", "berth_session=t.o.k"),
        ]);
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("t.o.k"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "berth_csrf=")]), CSRF_COOKIE),
            None
        );
    }

    #[test]
    fn set_cookie_is_strict() {
        let c = set_cookie(SESSION_COOKIE, "v", 60, false);
        assert_eq!(
            c,
            "berth_session=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(set_cookie(SESSION_COOKIE, "", 0, true).ends_with("Max-Age=0; Secure"));
    }

    #[test]
    fn forms_need_the_cookie_token_and_our_origin() {
        let token = new_csrf_token();
        assert!(is_csrf_token(&token));
        assert_ne!(token, new_csrf_token());
        let bases = ["http://127.0.0.1:5000".to_string()];
        let cookie = format!("berth_csrf={token}");
        let ok = headers(&[("cookie", &cookie), ("origin", "http://127.0.0.1:5000")]);
        assert_eq!(check_form(&ok, &bases, Some(&token)), Ok(()));
        // No Origin header (older browsers, some privacy settings): the token decides.
        let no_origin = headers(&[("cookie", &cookie)]);
        assert_eq!(check_form(&no_origin, &bases, Some(&token)), Ok(()));
        assert_eq!(
            check_form(&no_origin, &bases, Some("0")),
            Err(CsrfError::Token)
        );
        assert_eq!(check_form(&no_origin, &bases, None), Err(CsrfError::Token));
        let evil = headers(&[("cookie", &cookie), ("origin", "https://evil.example")]);
        assert!(matches!(
            check_form(&evil, &bases, Some(&token)),
            Err(CsrfError::Origin(_))
        ));
        // Another site's form carries no cookie (SameSite=Strict).
        assert_eq!(
            check_form(&headers(&[]), &bases, Some(&token)),
            Err(CsrfError::Token)
        );
    }
}
