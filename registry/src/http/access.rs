//! Access control at the HTTP edge: reads credentials (basic or bearer),
//! works out what a request needs (pull, push, delete on which repository),
//! and answers 401 with the token challenge or 403 DENIED. The decisions
//! themselves are [`crate::auth`]'s.

use std::net::IpAddr;

use axum::http::{HeaderValue, Method, StatusCode};
use base64::Engine;

use super::errors::{ApiError, Code};
use super::route::Route;
use super::{AppState, Req, hv};
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

enum Credentials {
    None,
    Basic(String, String),
    Bearer(String),
}

fn credentials(req: &Req) -> Result<Credentials, ApiError> {
    let Some(value) = req.header("authorization") else {
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
    if let Some(ip) = client
        && let Err(wait) = access.limiter.check(ip, &user)
    {
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
            if let Some(ip) = client {
                access.limiter.record_success(ip, &name);
            }
            Ok(identity)
        }
        None => {
            if let Some(ip) = client {
                access.limiter.record_failure(ip, &name);
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
        Route::Tags { name } | Route::Referrers { name, .. } => vec![(name.clone(), Action::Pull)],
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
    needs: Vec<(String, Action)>,
    /// Base URL of the token realm.
    base: String,
    credentials: Credentials,
    client: Option<IpAddr>,
    connection: Option<u64>,
    /// `GET /v2/`: any known caller is enough.
    base_endpoint: bool,
    /// `GET /v2/_catalog`: lists what the caller may pull.
    catalog: bool,
}

/// The registry's URL as the client reached it, for the token realm when no
/// `public_url` is configured. Both headers come from the client: only
/// `http`/`https` and a host of host-name characters are taken, so nothing
/// a client sends can break out of the quoted realm.
fn realm_base(req: &Req) -> String {
    let proto = match req.header("x-forwarded-proto").map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = req
        .header("host")
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{proto}://{host}")
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
fn challenge(access: &AccessControl, ask: &Ask, error: Option<&str>) -> HeaderValue {
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

fn unauthorized(access: &AccessControl, ask: &Ask, message: &str, error: Option<&str>) -> ApiError {
    let mut e = ApiError::new(Code::Unauthorized, message);
    e.challenge = Some(challenge(access, ask, error));
    e
}

/// A token that lacks a scope the policy would give: 401 with the challenge,
/// so the client fetches a new token; but 403 (with the same challenge) when
/// the same token comes back for the same scope on the same connection, for
/// clients that only refresh after a 403 (see `auth::Refusals`).
fn insufficient_scope(
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

/// Whether the caller may pull `name` (catalog filtering).
pub fn may_pull(state: &AppState, caller: &Caller, name: &str) -> bool {
    match &state.access {
        None => true,
        Some(access) => access
            .policy
            .get()
            .permits(&caller.identity, name, Action::Pull),
    }
}
