//! Access control at the HTTP edge: reads credentials (basic or bearer),
//! works out what a request needs (pull, push, delete on which repository),
//! and answers 401 with the token challenge or 403 DENIED. The decisions
//! themselves are [`crate::auth`]'s.

use std::net::IpAddr;

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;

use super::challenge::{insufficient_scope, realm_base, unauthorized};
use super::errors::{ApiError, Code};
use super::route::Route;
use super::{AppState, Req};
use crate::auth::{AccessControl, Action, Claims, Identity};

/// Who is asking, as far as handlers care.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// Present when the caller came with a bearer token.
    pub claims: Option<Claims>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Caller {
            identity: Identity::Anonymous,
            claims: None,
        }
    }
}

pub(super) enum Credentials {
    None,
    Basic(String, String),
    Bearer(String),
}

fn credentials(req: &Req) -> Result<Credentials, ApiError> {
    credentials_in(&req.headers)
}

fn credentials_in(headers: &HeaderMap) -> Result<Credentials, ApiError> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Ok(Credentials::None);
    };
    let bad = || ApiError::new(Code::Unauthorized, "malformed Authorization header");
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(bad)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
        Ok(Credentials::Basic(user.to_string(), password.to_string()))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credentials::Bearer(rest.trim().to_string()))
    } else {
        Err(bad())
    }
}

/// Basic credentials of the request, if any (a bearer token is refused here).
pub fn basic_credentials(req: &Req) -> Result<Option<(String, String)>, ApiError> {
    match credentials(req)? {
        Credentials::None => Ok(None),
        Credentials::Basic(user, password) => Ok(Some((user, password))),
        Credentials::Bearer(_) => Err(ApiError::new(
            Code::Unauthorized,
            "the token endpoint takes basic credentials, not a token",
        )),
    }
}

/// The identity a token's subject stands for under the current policy.
fn identity_of(access: &AccessControl, subject: &str) -> Identity {
    if subject.is_empty() {
        Identity::Anonymous
    } else if access.policy.get().robot(subject).is_some() {
        Identity::Robot {
            name: subject.into(),
        }
    } else {
        Identity::User {
            name: subject.into(),
        }
    }
}

/// Checks basic credentials, rate limited per client; bcrypt runs off the
/// async threads.
pub async fn login(
    access: &std::sync::Arc<AccessControl>,
    client: Option<IpAddr>,
    user: String,
    password: String,
    endpoint: &'static str,
) -> Result<Identity, ApiError> {
    let had_failures = match client {
        Some(ip) => access.limiter.check(ip, &user).await,
        None => Ok(false),
    };
    if let Err(wait) = had_failures {
        crate::metrics::AUTH_RATE_LIMITED
            .with_label_values(&[endpoint])
            .inc();
        let seconds = wait.as_secs().max(1);
        let mut e = ApiError::new(
            Code::TooManyRequests,
            format!(
                "too many failed logins for user `{user}` from this address; try again in {seconds} s"
            ),
        );
        e.retry_after = Some(seconds);
        return Err(e);
    }
    let checker = access.clone();
    let name = user.clone();
    let identity = tokio::task::spawn_blocking(move || checker.authenticate(&user, &password))
        .await
        .map_err(ApiError::internal)?;
    match identity {
        Some(identity) => {
            // Only a key with failures has anything to clear: no write
            // per successful login.
            if let (Some(ip), Ok(true)) = (client, had_failures) {
                access.limiter.record_success(ip, &name).await;
            }
            Ok(identity)
        }
        None => {
            if let Some(ip) = client {
                access.limiter.record_failure(ip, &name).await;
            }
            crate::metrics::AUTH_FAILURES
                .with_label_values(&[endpoint])
                .inc();
            tracing::warn!(user = %name, client = ?client, "failed login");
            Err(ApiError::new(
                Code::Unauthorized,
                "invalid username or password",
            ))
        }
    }
}

/// What the request needs, per repository.
fn needs(route: &Route, req: &Req) -> Vec<(String, Action)> {
    let m = &req.method;
    let read = *m == Method::GET || *m == Method::HEAD;
    match route {
        Route::Catalog => vec![],
        Route::Tags { name } | Route::Referrers { name, .. } | Route::Sif { name, .. } => {
            vec![(name.clone(), Action::Pull)]
        }
        Route::Manifest { name, .. } | Route::Blob { name, .. } => {
            let action = if read {
                Action::Pull
            } else if *m == Method::DELETE {
                Action::Delete
            } else {
                Action::Push
            };
            vec![(name.clone(), action)]
        }
        Route::Uploads { name } => {
            let mut needs = vec![(name.clone(), Action::Push)];
            // Mounting reads the source: pull on it too.
            if req.params.get("mount").is_some()
                && let Some(from) = req.params.get("from")
            {
                needs.push((from.to_string(), Action::Pull));
            }
            needs
        }
        Route::Upload { name, .. } => vec![(name.clone(), Action::Push)],
    }
}

/// Everything access control needs from a request, taken before any await
/// (the request body is not `Sync`, so the request cannot be held across one).
pub struct Ask {
    pub(super) needs: Vec<(String, Action)>,
    /// Base URL of the token realm.
    pub(super) base: String,
    pub(super) credentials: Credentials,
    pub(super) client: Option<IpAddr>,
    pub(super) connection: Option<u64>,
    /// `GET /v2/`: any known caller is enough.
    pub(super) base_endpoint: bool,
    /// `GET /v2/_catalog`: lists what the caller may pull.
    pub(super) catalog: bool,
}

/// Reads what `route` (None: `GET /v2/`) needs and who is asking.
pub fn ask(state: &AppState, route: Option<&Route>, req: &Req) -> Result<Ask, ApiError> {
    let base = match state.access.as_ref().and_then(|a| a.public_url.clone()) {
        Some(url) => url,
        None => realm_base(req),
    };
    Ok(Ask {
        needs: route.map(|r| needs(r, req)).unwrap_or_default(),
        base,
        credentials: if state.access.is_some() {
            credentials(req)?
        } else {
            Credentials::None
        },
        client: req.client,
        connection: req.connection,
        base_endpoint: route.is_none(),
        catalog: matches!(route, Some(Route::Catalog)),
    })
}

/// Authenticates and authorizes what [`ask`] read.
pub async fn check(state: &AppState, ask: Ask) -> Result<Caller, ApiError> {
    let Some(access) = &state.access else {
        return Ok(Caller::anonymous());
    };
    let caller = match &ask.credentials {
        Credentials::None => Caller::anonymous(),
        Credentials::Basic(user, password) => {
            match login(
                access,
                ask.client,
                user.clone(),
                password.clone(),
                "registry",
            )
            .await
            {
                Ok(identity) => Caller {
                    identity,
                    claims: None,
                },
                Err(e) if e.code == Code::TooManyRequests => return Err(e),
                Err(_) => {
                    return Err(unauthorized(
                        access,
                        &ask,
                        "invalid username or password",
                        None,
                    ));
                }
            }
        }
        Credentials::Bearer(token) => match access.tokens.verify(token) {
            Ok(claims) => Caller {
                identity: identity_of(access, &claims.sub),
                claims: Some(claims),
            },
            Err(e) => {
                return Err(unauthorized(
                    access,
                    &ask,
                    &e.to_string(),
                    Some("invalid_token"),
                ));
            }
        },
    };
    // Anonymous callers are challenged at /v2/ so that clients log in.
    if ask.base_endpoint && caller.identity == Identity::Anonymous && caller.claims.is_none() {
        return Err(unauthorized(access, &ask, "authentication required", None));
    }
    let policy = access.policy.get();
    // The catalog lists what the caller may pull. A request with no
    // credentials at all is challenged, as distribution does: clients with
    // stored credentials (oras, regctl) send them only after a challenge,
    // and clients without any fetch an anonymous token, with which they see
    // what anonymous may pull.
    if ask.catalog && matches!(ask.credentials, Credentials::None) {
        return Err(unauthorized(access, &ask, "authentication required", None));
    }
    for (name, action) in &ask.needs {
        let granted = match &caller.claims {
            Some(claims) => claims.grants(name, action.as_str()),
            None => policy.permits(&caller.identity, name, *action),
        };
        if granted {
            continue;
        }
        // A token missing a scope the policy would give: ask for a new one.
        let could = policy.permits(&caller.identity, name, *action);
        if let (Some(claims), true) = (&caller.claims, could) {
            return Err(insufficient_scope(access, &ask, claims, name, *action));
        }
        if caller.identity == Identity::Anonymous {
            return Err(unauthorized(access, &ask, "authentication required", None));
        }
        return Err(ApiError::new(
            Code::Denied,
            format!(
                "{} may not {action} repository `{name}`",
                caller.identity.name()
            ),
        )
        .with_status(StatusCode::FORBIDDEN));
    }
    Ok(caller)
}

/// The 401 a `library://` client gets for a request without credentials
/// under the library prefix, whether or not it would need any: the client
/// sends the token `/v1/oci-redirect` gave it only after a challenge, and
/// fails unless it has sent one (see `http::library`).
pub fn demand_credentials(state: &AppState, route: &Route, req: &Req) -> ApiError {
    let base = match state.access.as_ref().and_then(|a| a.public_url.clone()) {
        Some(url) => url,
        None => realm_base(req),
    };
    match &state.access {
        Some(access) => {
            let ask = Ask {
                needs: needs(route, req),
                base,
                credentials: Credentials::None,
                client: req.client,
                connection: req.connection,
                base_endpoint: false,
                catalog: matches!(route, Route::Catalog),
            };
            unauthorized(access, &ask, "authentication required", None)
        }
        None => {
            let mut e = ApiError::new(
                Code::Unauthorized,
                "library clients send the token of /v1/oci-redirect",
            );
            e.challenge = Some(super::hv(format!(
                "Bearer realm=\"{}/v1/oci-redirect\",service=\"berth-library\"",
                base.trim_end_matches('/')
            )));
            e
        }
    }
}

/// Whether the caller may pull `name`, by who they are (the catalog's and
/// the web UI's lists: names only, whatever a token's scopes).
pub fn may_pull(state: &AppState, caller: &Caller, name: &str) -> bool {
    match &state.access {
        None => true,
        Some(access) => access
            .policy
            .get()
            .permits(&caller.identity, name, Action::Pull),
    }
}

/// Whether the caller may take `action` on `name` itself (everyone may do
/// everything with access control off): the policy must permit it and, for
/// a caller with a bearer token, the token must grant it, as on `/v2/` — a
/// token for the catalog or for pulling one repository reads no other
/// repository's tags or manifests through the web UI's API, and a token
/// without `delete` deletes nothing through its forms.
pub fn may(state: &AppState, caller: &Caller, name: &str, action: Action) -> bool {
    match &state.access {
        None => true,
        Some(access) => {
            access.policy.get().permits(&caller.identity, name, action)
                && caller
                    .claims
                    .as_ref()
                    .is_none_or(|claims| claims.grants(name, action.as_str()))
        }
    }
}

/// Who a browsing request (the web UI, its JSON API) comes from: basic
/// credentials or a bearer token from the token endpoint, checked as on
/// the API (basic logins are rate limited the same way; a token's claims
/// are kept, for [`may`]); without either,
/// the web UI's `session` token if it is valid and its user still exists;
/// else anonymous. Wrong credentials are 401; an expired session is anonymous.
pub async fn browsing_caller(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    session: Option<&str>,
) -> Result<Caller, ApiError> {
    let Some(access) = &state.access else {
        return Ok(Caller::anonymous());
    };
    match credentials_in(headers)? {
        Credentials::Basic(user, password) => {
            let identity = login(access, client, user, password, "registry").await?;
            Ok(Caller {
                identity,
                claims: None,
            })
        }
        Credentials::Bearer(token) => {
            let claims = access
                .tokens
                .verify(&token)
                .map_err(|e| ApiError::new(Code::Unauthorized, e.to_string()))?;
            Ok(Caller {
                identity: identity_of(access, &claims.sub),
                claims: Some(claims),
            })
        }
        Credentials::None => {
            let claims = session.and_then(|s| access.sessions.verify(s).ok());
            Ok(match claims {
                Some(c) if !c.sub.is_empty() && access.knows(&c.sub) => Caller {
                    identity: identity_of(access, &c.sub),
                    claims: None,
                },
                _ => Caller::anonymous(),
            })
        }
    }
}
