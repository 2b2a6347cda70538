//! The token endpoint of the Docker token-auth flow, `/auth/token`: GET
//! with basic credentials or none (docker, podman, skopeo, oras), and the
//! OAuth2 POST form (containerd). Grants what was asked for and what the
//! policy allows, nothing more.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::http::Method;
use axum::response::IntoResponse;
use serde_json::json;

use super::access::login;
use super::errors::{ApiError, ApiResult, Code};
use super::{Params, Req, hv};
use crate::auth::{Access, AccessControl, Action, Identity};

/// `repository:NAME:pull,push` -> (NAME, [pull, push]); other kinds are ignored.
fn parse_scope(scope: &str) -> Option<(String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    (kind == "repository").then(|| {
        (
            name.to_string(),
            actions.split(',').map(str::to_string).collect(),
        )
    })
}

/// Requested scopes intersected with what the policy gives `who`.
pub(super) fn grant(access: &AccessControl, who: &Identity, scopes: &[String]) -> Vec<Access> {
    let policy = access.policy.get();
    let mut out: Vec<Access> = Vec::new();
    for (name, asked) in scopes.iter().filter_map(|s| parse_scope(s)) {
        let allowed = policy.allowed(who, &name);
        let mut actions: BTreeSet<&str> = BTreeSet::new();
        for a in &asked {
            if a == "*" {
                actions.extend(allowed.iter().map(|x| x.as_str()));
            } else if let Ok(action) = a.parse::<Action>()
                && allowed.contains(&action)
            {
                actions.insert(action.as_str());
            }
        }
        if actions.is_empty() {
            continue;
        }
        match out.iter_mut().find(|a| a.name == name) {
            Some(existing) => {
                for a in actions {
                    if !existing.actions.iter().any(|x| x == a) {
                        existing.actions.push(a.to_string());
                    }
                }
            }
            None => out.push(Access {
                kind: "repository".into(),
                name,
                actions: actions.into_iter().map(str::to_string).collect(),
            }),
        }
    }
    out
}

fn token_unauthorized(message: &str) -> ApiError {
    let mut e = ApiError::new(Code::Unauthorized, message);
    e.challenge = Some(hv("Basic realm=\"berth\""));
    e
}

pub async fn issue(access: &Arc<AccessControl>, req: Req) -> ApiResult {
    let client = req.client;
    let (params, basic) = if req.method == Method::POST {
        // OAuth2 form: grant_type=password (username, password) or anonymous.
        let body = axum::body::to_bytes(req.body, 64 * 1024)
            .await
            .map_err(|_| {
                ApiError::new(
                    Code::Unsupported,
                    "token request body too large or unreadable",
                )
            })?;
        let form = Params::parse(std::str::from_utf8(&body).ok());
        let basic = match form.get("grant_type") {
            Some("password") => Some((
                form.get("username").unwrap_or_default().to_string(),
                form.get("password").unwrap_or_default().to_string(),
            )),
            Some("refresh_token") => {
                return Err(ApiError::new(
                    Code::Unsupported,
                    "refresh tokens are not issued; use grant_type=password",
                )
                .with_status(axum::http::StatusCode::BAD_REQUEST));
            }
            _ => None,
        };
        (form, basic)
    } else {
        let basic = super::access::basic_credentials(&req)?;
        (req.params, basic)
    };
    if let Some(service) = params.get("service")
        && service != access.tokens.service
    {
        return Err(ApiError::new(
            Code::Unsupported,
            format!(
                "this token service issues tokens for service `{}`",
                access.tokens.service
            ),
        )
        .with_status(axum::http::StatusCode::BAD_REQUEST));
    }
    let who = match basic {
        None => Identity::Anonymous,
        Some((user, password)) => login(access, client, user, password, "token")
            .await
            .map_err(|e| {
                if e.code == Code::TooManyRequests {
                    e
                } else {
                    token_unauthorized(&e.message)
                }
            })?,
    };
    // GET repeats `scope`; the POST form separates scopes with spaces.
    let scopes: Vec<String> = params
        .all("scope")
        .flat_map(|s| s.split(' '))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let granted = grant(access, &who, &scopes);
    let (token, claims) = access
        .tokens
        .issue(who.name(), granted)
        .map_err(ApiError::internal)?;
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": claims.exp - claims.iat,
        "issued_at": crate::rfc3339::format(claims.iat),
    });
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            parse_scope("repository:team/app:pull,push"),
            Some(("team/app".into(), vec!["pull".into(), "push".into()]))
        );
        assert_eq!(parse_scope("registry:catalog:*"), None);
    }
}
