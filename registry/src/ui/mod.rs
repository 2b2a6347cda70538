//! The web UI, served by `berth serve` itself, and the JSON API it reads.
//!
//! - `/ui/…`: server-rendered pages ([`pages`] handles requests, [`render`]
//!   turns the service's views into HTML, pure) with embedded [`assets`];
//! - `/api/v1/…`: the same views as JSON ([`api`]).
//!
//! Both stand behind the registry's access control: a visitor is whoever
//! their basic credentials, bearer token (from `/auth/token`) or UI session
//! ([`session`]) say, anonymous otherwise; they see only repositories they
//! may pull — one they may not is "not known", as one that does not exist —
//! and delete only where the policy lets them. Nothing here changes what
//! the API allows: the UI's one write (deleting a tag) is a form post
//! checked for its origin and CSRF token, under the same delete permission.

mod api;
pub mod assets;
mod pages;
pub mod render;
pub mod session;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::http::AppState;
use crate::http::access::{self, Caller};
use crate::http::errors::ApiError;
use crate::http::stream::ClientAddr;
use crate::oci::names::{TagOrDigest, is_valid_name, is_valid_tag};

/// The UI's and the API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::repositories))
        .route("/ui/operations", get(pages::operations))
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .route("/ui/logout", axum::routing::post(pages::logout))
        .route("/ui/assets/{file}", get(asset))
        .route(
            "/ui/r/{*rest}",
            get(pages::repository).post(pages::delete_tag),
        )
        .route("/api/v1/repositories", get(api::repositories))
        .route("/api/v1/repositories/{*rest}", get(api::repository))
        .route("/api/v1/operations", get(api::operations))
}

/// What a path under `/ui/r/` or `/api/v1/repositories/` names. Names,
/// tags and digests are checked against the spec's grammars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `NAME`
    Repository(String),
    /// `NAME/-/manifests/REFERENCE`
    Manifest(String, TagOrDigest),
    /// `NAME/-/referrers/DIGEST` (API only)
    Referrers(String, TagOrDigest),
    /// `NAME/-/tags/TAG/delete` (UI form posts only)
    DeleteTag(String, String),
}

impl Target {
    /// Parses the path after the prefix (percent-decoded).
    pub fn parse(rest: &str) -> Option<Target> {
        let rest = rest.trim_end_matches('/');
        let (name, action) = match rest.split_once("/-/") {
            Some((name, action)) => (name, Some(action)),
            None => (rest, None),
        };
        if !is_valid_name(name) {
            return None;
        }
        let name = name.to_string();
        let Some(action) = action else {
            return Some(Target::Repository(name));
        };
        let segs: Vec<&str> = action.split('/').collect();
        match segs.as_slice() {
            ["manifests", reference] => reference.parse().ok().map(|r| Target::Manifest(name, r)),
            ["referrers", digest] => match digest.parse() {
                Ok(d @ TagOrDigest::Digest(_)) => Some(Target::Referrers(name, d)),
                _ => None,
            },
            ["tags", tag, "delete"] if is_valid_tag(tag) => {
                Some(Target::DeleteTag(name, tag.to_string()))
            }
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Target::Repository(n)
            | Target::Manifest(n, _)
            | Target::Referrers(n, _)
            | Target::DeleteTag(n, _) => n,
        }
    }
}

/// Route labels for metrics and logs (never a repository name or tag).
pub const ROUTE_LABELS: [&str; 13] = [
    "/",
    "/ui/",
    "/ui/operations",
    "/ui/login",
    "/ui/logout",
    "/ui/assets/{file}",
    "/ui/r/{name}",
    "/ui/r/{name}/-/manifests/{reference}",
    "/ui/r/{name}/-/tags/{tag}/delete",
    "/api/v1/repositories",
    "/api/v1/repositories/{name}",
    "/api/v1/repositories/{name}/-/manifests/{reference}",
    "/api/v1/repositories/{name}/-/referrers/{digest}",
];

/// The route label of a UI or API path; None for other paths, and
/// `/api/v1/operations` too.
pub fn route_template(path: &str) -> Option<&'static str> {
    let decoded = |p: &str| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some(match path {
        "/" => "/",
        "/ui" | "/ui/" => "/ui/",
        "/ui/operations" => "/ui/operations",
        "/ui/login" => "/ui/login",
        "/ui/logout" => "/ui/logout",
        "/api/v1/repositories" => "/api/v1/repositories",
        "/api/v1/operations" => "/api/v1/operations",
        _ if path.starts_with("/ui/assets/") => "/ui/assets/{file}",
        _ => {
            if let Some(rest) = path.strip_prefix("/ui/r/") {
                match Target::parse(&decoded(rest))? {
                    Target::Repository(_) => "/ui/r/{name}",
                    Target::Manifest(..) => "/ui/r/{name}/-/manifests/{reference}",
                    Target::DeleteTag(..) => "/ui/r/{name}/-/tags/{tag}/delete",
                    Target::Referrers(..) => return None,
                }
            } else if let Some(rest) = path.strip_prefix("/api/v1/repositories/") {
                match Target::parse(&decoded(rest))? {
                    Target::Repository(_) => "/api/v1/repositories/{name}",
                    Target::Manifest(..) => "/api/v1/repositories/{name}/-/manifests/{reference}",
                    Target::Referrers(..) => "/api/v1/repositories/{name}/-/referrers/{digest}",
                    Target::DeleteTag(..) => return None,
                }
            } else {
                return None;
            }
        }
    })
}

/// Every UI route label, `/api/v1/operations` included.
pub fn labels() -> impl Iterator<Item = &'static str> {
    ROUTE_LABELS.into_iter().chain(["/api/v1/operations"])
}

/// Who is looking, and how they reach the registry: read from each UI or
/// API request before its handler runs.
pub struct Visitor {
    pub caller: Caller,
    /// The CSRF token of the visitor's cookie, or a new one.
    pub csrf: String,
    /// `csrf` is new: the response sets its cookie.
    pub new_csrf: bool,
    /// The registry's base URL as the visitor reached it
    /// (`public_url` if configured, else from the request).
    pub base: String,
    /// The path and query of the request.
    pub here: String,
    pub headers: HeaderMap,
    pub client: Option<std::net::IpAddr>,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let client = parts
            .extensions
            .get::<ConnectInfo<ClientAddr>>()
            .map(|c| c.0.0.ip());
        let session = session::cookie(&parts.headers, session::SESSION_COOKIE);
        let caller = access::browsing_caller(state, &parts.headers, client, session)
            .await
            .map_err(|e| unauthorized(state, &parts.headers, e))?;
        let (csrf, new_csrf) = match session::cookie(&parts.headers, session::CSRF_COOKIE)
            .filter(|c| session::is_csrf_token(c))
        {
            Some(c) => (c.to_string(), false),
            None => (session::new_csrf_token(), true),
        };
        let base = state
            .access
            .as_ref()
            .and_then(|a| a.public_url.clone())
            .unwrap_or_else(|| crate::http::challenge::base_url(&parts.headers));
        Ok(Visitor {
            caller,
            csrf,
            new_csrf,
            base: base.trim_end_matches('/').to_string(),
            here: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/ui/".to_string(), |p| p.to_string()),
            headers: parts.headers.clone(),
            client,
        })
    }
}

impl Visitor {
    /// The user or robot logged in, if any.
    pub fn user(&self) -> Option<&str> {
        Some(self.caller.identity.name()).filter(|n| !n.is_empty())
    }

    /// `host:port` of the registry, for pull commands.
    pub fn host(&self) -> &str {
        self.base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, h)| h)
    }

    /// Whether cookies must be `Secure`.
    pub fn https(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The origins a form of ours is posted from: the base URL, and the
    /// address the request came to (behind a proxy that rewrites neither).
    pub fn origins(&self) -> Vec<String> {
        vec![
            self.base.clone(),
            crate::http::challenge::base_url(&self.headers),
        ]
    }

    /// The CSRF cookie to set, if the visitor had none.
    pub fn csrf_cookie(&self) -> Option<HeaderValue> {
        self.new_csrf
            .then(|| {
                session::set_cookie(session::CSRF_COOKIE, &self.csrf, 86_400 * 30, self.https())
            })
            .and_then(|c| HeaderValue::from_str(&c).ok())
    }
}

/// Wrong credentials on a browsing request: 401 with the token challenge
/// (basic works too), as JSON for the API, a page for the UI would be no
/// better: the browser asks for credentials itself.
fn unauthorized(state: &AppState, headers: &HeaderMap, mut e: ApiError) -> Response {
    if e.status == StatusCode::UNAUTHORIZED
        && let Some(access) = &state.access
    {
        let base = access
            .public_url
            .clone()
            .unwrap_or_else(|| crate::http::challenge::base_url(headers));
        e.challenge = HeaderValue::from_str(&format!(
            "Bearer realm=\"{}/auth/token\",service=\"{}\"",
            base.trim_end_matches('/'),
            access.tokens.service
        ))
        .ok();
    }
    e.into_response()
}

/// `/ui/assets/{file}`
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match assets::get(&file) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_any_depth_of_name() {
        assert_eq!(
            Target::parse("team/a/b"),
            Some(Target::Repository("team/a/b".into()))
        );
        assert_eq!(
            Target::parse("team/app/-/manifests/v1"),
            Some(Target::Manifest("team/app".into(), "v1".parse().unwrap()))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            Target::parse(&format!("x/-/manifests/{digest}")),
            Some(Target::Manifest(_, TagOrDigest::Digest(_)))
        ));
        assert!(matches!(
            Target::parse(&format!("x/-/referrers/{digest}")),
            Some(Target::Referrers(..))
        ));
        assert_eq!(
            Target::parse("x/-/referrers/v1"),
            None,
            "referrers need a digest"
        );
        assert_eq!(
            Target::parse("x/-/tags/v1.0/delete"),
            Some(Target::DeleteTag("x".into(), "v1.0".into()))
        );
        for bad in [
            "",
            "UPPER",
            "../etc",
            "x/-/manifests/",
            "x/-/nothing",
            "x/-/tags/%/delete",
            "a//b",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn route_labels_hold_no_names() {
        assert_eq!(route_template("/"), Some("/"));
        assert_eq!(route_template("/ui/r/secret/app"), Some("/ui/r/{name}"));
        assert_eq!(
            route_template("/ui/r/secret/app/-/manifests/v1"),
            Some("/ui/r/{name}/-/manifests/{reference}")
        );
        assert_eq!(
            route_template("/api/v1/repositories/a/-/referrers/sha256:abc"),
            None,
            "an invalid digest is no route"
        );
        assert_eq!(
            route_template("/ui/assets/style.css"),
            Some("/ui/assets/{file}")
        );
        assert_eq!(route_template("/v2/"), None);
        for l in labels() {
            assert!(!l.contains("secret"));
        }
        assert!(labels().any(|l| l == "/api/v1/operations"));
    }
}
