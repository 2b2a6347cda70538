//! The `WWW-Authenticate` challenges of the Docker token flow: where to get
//! a token (the realm, from `public_url` or the request), for which scopes,
//! and why the last one did not do (`error=`).

use axum::http::{HeaderValue, StatusCode};

use super::access::Ask;
use super::errors::{ApiError, Code};
use super::{Req, hv};
use crate::auth::{AccessControl, Action, Claims};

/// The registry's URL as the client reached it, for the token realm when no
/// `public_url` is configured. Both headers come from the client: only
/// `http`/`https` and a host of host-name characters are taken, so nothing
/// a client sends can break out of the quoted realm.
pub(super) fn realm_base(req: &Req) -> String {
    base_url(&req.headers)
}

/// [`realm_base`] from the request headers.
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let proto = match header("x-forwarded-proto").map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = header("host")
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{proto}://{host}")
}

/// The scopes a challenge asks for: one per repository, with every action
/// the request needs. A push asks for pull too, as distribution does (the
/// spec's example is `pull,push`): clients keep one token for a push's
/// HEADs and uploads, and the token endpoint grants only what the policy
/// allows, so a push-only caller still gets a push-only token. The catalog
/// asks for `registry:catalog:*`.
fn scopes(ask: &Ask) -> Vec<String> {
    if ask.catalog {
        return vec!["registry:catalog:*".to_string()];
    }
    let mut scopes: Vec<(&str, Vec<Action>)> = Vec::new();
    for (name, action) in &ask.needs {
        let asked: &[Action] = match action {
            Action::Push => &[Action::Pull, Action::Push],
            other => std::slice::from_ref(other),
        };
        let actions = match scopes.iter_mut().find(|(n, _)| n == name) {
            Some((_, actions)) => actions,
            None => {
                scopes.push((name, Vec::new()));
                &mut scopes.last_mut().expect("just pushed").1
            }
        };
        for a in asked {
            if !actions.contains(a) {
                actions.push(*a);
            }
        }
    }
    scopes
        .into_iter()
        .map(|(name, mut actions)| {
            actions.sort();
            let actions: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
            format!("repository:{name}:{}", actions.join(","))
        })
        .collect()
}

/// The `WWW-Authenticate` challenge pointing clients at the token service.
pub(super) fn challenge(access: &AccessControl, ask: &Ask, error: Option<&str>) -> HeaderValue {
    let mut value = format!(
        "Bearer realm=\"{}/auth/token\",service=\"{}\"",
        ask.base.trim_end_matches('/'),
        access.tokens.service
    );
    let scopes = scopes(ask);
    if !scopes.is_empty() {
        value.push_str(&format!(",scope=\"{}\"", scopes.join(" ")));
    }
    if let Some(e) = error {
        value.push_str(&format!(",error=\"{e}\""));
    }
    hv(value)
}

pub(super) fn unauthorized(
    access: &AccessControl,
    ask: &Ask,
    message: &str,
    error: Option<&str>,
) -> ApiError {
    let mut e = ApiError::new(Code::Unauthorized, message);
    e.challenge = Some(challenge(access, ask, error));
    e
}

/// A token that lacks a scope the policy would give: 401 with the challenge,
/// so the client fetches a new token; but 403 (with the same challenge) when
/// the same token comes back for the same scope on the same connection, for
/// clients that only refresh after a 403 (see `auth::Refusals`).
pub(super) fn insufficient_scope(
    access: &AccessControl,
    ask: &Ask,
    claims: &Claims,
    name: &str,
    action: Action,
) -> ApiError {
    let scope = format!("repository:{name}:{action}");
    let message = format!("the token does not grant {scope}; get a new token");
    let mut e = unauthorized(access, ask, &message, Some("insufficient_scope"));
    if let Some(connection) = ask.connection
        && access
            .refusals
            .refused_again(connection, &claims.jti, &scope)
    {
        e.code = Code::Denied;
        e.status = StatusCode::FORBIDDEN;
    }
    e
}
