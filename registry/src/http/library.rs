//! The Sylabs library API, as far as current `library://` clients need it
//! to reach Berth's own OCI API (what container-library-client, inside
//! Apptainer and SingularityCE, does):
//!
//! - `GET /assets/config/config.prod.json`: service discovery for
//!   `apptainer remote add`: the library and token services are here.
//! - `GET /version`: `{"data":{"version","apiVersion"}}`.
//! - `GET /v1/token-status`: 200 for a valid access token
//!   (`apptainer remote login` checks the token there).
//! - `GET /v1/oci-redirect?namespace=&accessTypes=`: the OCI base URL
//!   (`<url>/library/`) and a token for the repository the library path
//!   names, granting what the policy gives the caller of what was asked.
//! - `GET /v1/images/<path>:<tag>?arch=`: the image's record (its SIF's
//!   hash and size, architecture, signatures), which Apptainer reads
//!   before it pulls.
//! - `/library/v2/...`: the OCI API for library clients. The client sends
//!   the redirect's token only after a 401, and fails when its first
//!   request succeeded without one ("malformed Authorization header ()"):
//!   so here every request without credentials is challenged, on an open
//!   registry too, and manifests and configs are shown as library clients
//!   require ([`crate::service::library`]). The OCI API at `/v2/` is
//!   untouched by any of it.
//!
//! Library callers identify with the access token Apptainer stores
//! (`Authorization: Bearer …`): a robot's secret, or `NAME:PASSWORD` of a
//! user or robot; or with basic credentials. Anything else of the library API (entities, collections,
//! containers, legacy uploads and downloads, search, tags) answers 404.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use serde_json::{Value, json};

use super::access::{self, login};
use super::challenge::realm_base;
use super::errors::{ApiError, ApiResult, Code};
use super::route::{self, Route};
use super::{AppState, Req, hv};
use crate::auth::{Action, Identity};
use crate::oci::digest::Digest;
use crate::service::ServiceError;
use crate::service::library::{LibraryImage, repository_name};

/// The library API version reported: 2.0.0-alpha.2 is the first with
/// per-architecture tags, which is what Berth's indexes give.
const API_VERSION: &str = "2.0.0-alpha.2";
/// A library push or pull uses one redirect token for all of its
/// requests: it lasts at least this long, whatever `token_expiry_seconds`.
const LIBRARY_TOKEN_MIN: Duration = Duration::from_secs(3600);
/// The token of an open registry: never checked (anyone may do anything),
/// but a library client needs one to send.
const OPEN_TOKEN: &str = "berth-open-registry";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assets/config/config.prod.json", get(discovery))
        .route("/version", get(version))
        .route("/v1/token-status", get(token_status))
        .route("/v1/oci-redirect", get(oci_redirect))
        .route("/v1/images/{*rest}", get(image))
        .route("/v1/{*rest}", any(not_served))
        .route("/library/v2/{*rest}", any(dispatch))
}

/// An error as the library API's clients read it (json-resp):
/// `{"error":{"code":404,"message":"…"}}`.
fn library_error(e: ApiError) -> Response {
    let status = e.status;
    let body = json!({"error": {"code": status.as_u16(), "message": e.message}});
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(challenge) = e.challenge {
        response.headers_mut().insert("www-authenticate", challenge);
    }
    if let Some(seconds) = e.retry_after {
        response
            .headers_mut()
            .insert("retry-after", hv(seconds.to_string()));
    }
    response
}

/// `{"data": …}`, as json-resp writes a response.
fn data(value: Value) -> Response {
    axum::Json(json!({ "data": value })).into_response()
}

/// The registry's URL as clients reach it.
fn base_url(state: &AppState, req: &Req) -> String {
    match state.access.as_ref().and_then(|a| a.public_url.clone()) {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => realm_base(req),
    }
}

async fn discovery(State(state): State<AppState>, request: Request) -> Response {
    let base = Asked::of(&state, request).base;
    axum::Json(json!({
        "libraryAPI": {"uri": base},
        "tokenAPI": {"uri": base},
    }))
    .into_response()
}

async fn version() -> Response {
    data(json!({
        "version": format!("berth {}", env!("CARGO_PKG_VERSION")),
        "apiVersion": API_VERSION,
    }))
}

async fn not_served() -> Response {
    library_error(
        ApiError::new(
            Code::Unsupported,
            "Berth serves library:// through /v1/oci-redirect and its OCI API; this part of \
             the library API (entities, collections, containers, legacy uploads and downloads, \
             search) is not served",
        )
        .with_status(StatusCode::NOT_FOUND),
    )
}

/// What a library API request brings, taken before any await (a request
/// body is not `Sync`: the request cannot be held across one).
struct Asked {
    authorization: Option<String>,
    client: Option<std::net::IpAddr>,
    params: super::Params,
    /// The registry's URL as the client reached it.
    base: String,
}

impl Asked {
    fn of(state: &AppState, request: Request) -> Asked {
        let req = Req::from_request(request);
        Asked {
            authorization: req.header("authorization").map(str::to_string),
            client: req.client,
            base: base_url(state, &req),
            params: req.params,
        }
    }
}

/// Who a library request comes from (see the module's docs). Anonymous
/// without credentials, and on an open registry.
async fn caller(state: &AppState, req: &Asked) -> Result<Identity, ApiError> {
    let Some(access) = &state.access else {
        return Ok(Identity::Anonymous);
    };
    let Some(value) = req.authorization.as_deref() else {
        return Ok(Identity::Anonymous);
    };
    let refused = || ApiError::new(Code::Unauthorized, "invalid access token or credentials");
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(refused)?;
    let rest = rest.trim();
    let login_as =
        |user: String, password: String| login(access, req.client, user, password, "library");
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(refused)?;
        let (user, password) = decoded.split_once(':').ok_or_else(refused)?;
        return login_as(user.into(), password.into())
            .await
            .map_err(keep_rate_limit);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refused());
    }
    // Tokens of Berth's token service are not accepted here: each is
    // scoped to what it was issued for, and would mint broader ones.
    if let Some((user, password)) = rest.split_once(':') {
        return login_as(user.into(), password.into())
            .await
            .map_err(keep_rate_limit);
    }
    // A robot's secret alone: rate limited like a login, under one key.
    const SECRET_KEY: &str = "(library access token)";
    if let Some(ip) = req.client
        && let Err(wait) = access.limiter.check(ip, SECRET_KEY).await
    {
        crate::metrics::AUTH_RATE_LIMITED
            .with_label_values(&["library"])
            .inc();
        let mut e = ApiError::new(
            Code::TooManyRequests,
            "too many invalid access tokens from this address",
        );
        e.retry_after = Some(wait.as_secs().max(1));
        return Err(e);
    }
    if let Some(robot) = access.robot_with_secret(rest) {
        return Ok(robot);
    }
    if let Some(ip) = req.client {
        access.limiter.record_failure(ip, SECRET_KEY).await;
    }
    crate::metrics::AUTH_FAILURES
        .with_label_values(&["library"])
        .inc();
    tracing::warn!(client = ?req.client, "invalid library access token");
    Err(refused())
}

fn keep_rate_limit(e: ApiError) -> ApiError {
    if e.code == Code::TooManyRequests {
        e
    } else {
        ApiError::new(Code::Unauthorized, "invalid access token or credentials")
    }
}

async fn token_status(State(state): State<AppState>, request: Request) -> Response {
    let req = Asked::of(&state, request);
    let result = async {
        let who = caller(&state, &req).await?;
        if state.access.is_some() && who == Identity::Anonymous {
            return Err(ApiError::new(Code::Unauthorized, "no access token"));
        }
        Ok(data(json!({"status": "valid", "subject": who.name()})))
    }
    .await;
    result.unwrap_or_else(library_error)
}

/// 401 for anonymous, 403 for a known caller: the policy does not let
/// `who` `action` repository `name`.
fn refuse(who: &Identity, name: &str, action: Action) -> ApiError {
    if *who == Identity::Anonymous {
        ApiError::new(
            Code::Unauthorized,
            format!("authentication required to {action} `{name}`"),
        )
    } else {
        ApiError::new(
            Code::Denied,
            format!("{} may not {action} repository `{name}`", who.name()),
        )
        .with_status(StatusCode::FORBIDDEN)
    }
}

async fn oci_redirect(State(state): State<AppState>, request: Request) -> Response {
    let req = Asked::of(&state, request);
    let result = async {
        let who = caller(&state, &req).await?;
        let namespace = req.params.get("namespace").unwrap_or_default();
        let name = repository_name(namespace).map_err(ApiError::from)?;
        let asked: Vec<&str> = req
            .params
            .get("accessTypes")
            .unwrap_or("pull")
            .split(',')
            .map(str::trim)
            .filter(|a| matches!(*a, "pull" | "push"))
            .collect();
        let token = match &state.access {
            None => OPEN_TOKEN.to_string(),
            Some(access) => {
                // What the policy gives, of what was asked (maybe nothing:
                // the registry then answers the client 401 or 403, which
                // it reports as such).
                let scope = format!("repository:{name}:{}", asked.join(","));
                let granted = super::token::grant(access, &who, &[scope]);
                let expiry = access.tokens.expiry.max(LIBRARY_TOKEN_MIN);
                access
                    .tokens
                    .issue_for(who.name(), granted, expiry)
                    .map_err(ApiError::internal)?
                    .0
            }
        };
        Ok(axum::Json(json!({
            "token": token,
            "url": format!("{}/library/", req.base),
            "name": name,
        }))
        .into_response())
    }
    .await;
    result.unwrap_or_else(library_error)
}

async fn image(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let req = Asked::of(&state, request);
    let result = async {
        let who = caller(&state, &req).await?;
        let reference = percent_encoding::percent_decode_str(
            path.strip_prefix("/v1/images/").unwrap_or_default(),
        )
        .decode_utf8_lossy()
        .into_owned();
        let (path, tag) = match reference.rsplit_once(':') {
            Some((path, tag)) => (path, tag),
            None => (reference.as_str(), "latest"),
        };
        let name = repository_name(path).map_err(ApiError::from)?;
        if let Some(access) = &state.access
            && !access.policy.get().permits(&who, &name, Action::Pull)
        {
            return Err(refuse(&who, &name, Action::Pull));
        }
        let arch = req.params.get("arch").filter(|a| !a.is_empty());
        let image = state
            .registry
            .repository(&name)
            .library_image(tag, arch)
            .await
            .map_err(|e| match e {
                e @ (ServiceError::ManifestUnknown { .. } | ServiceError::NoSifImage { .. }) => {
                    ApiError::new(Code::ManifestUnknown, e.to_string())
                }
                e => e.into(),
            })?;
        Ok(data(image_record(&name, tag, &image)))
    }
    .await;
    result.unwrap_or_else(library_error)
}

/// container-library-client's `Image`.
fn image_record(name: &str, tag: &str, image: &LibraryImage) -> Value {
    let parts: Vec<&str> = name.splitn(3, '/').collect();
    let (entity, collection, container) = match parts.as_slice() {
        [e, c, n] => (*e, *c, *n),
        [c, n] => ("", *c, *n),
        _ => ("", "", name),
    };
    let mut record = json!({
        "id": image.manifest,
        "hash": format!("{}.{}", image.layer.algorithm().as_str(), image.layer.hex()),
        "description": image.description,
        "container": name,
        "size": image.size,
        "uploaded": true,
        "signed": image.signed,
        "arch": image.architecture,
        "fingerprints": image.fingerprints,
        "encrypted": image.encrypted,
        "customData": "",
        "deleted": false,
        "createdBy": "",
        "entity": entity,
        "entityName": entity,
        "collection": format!("{entity}/{collection}").trim_start_matches('/'),
        "collectionName": collection,
        "containerName": container,
        "tags": [tag],
        "containerStars": 0,
        "containerDownloads": 0,
    });
    if image.created > 0
        && let Some(o) = record.as_object_mut()
    {
        o.insert(
            "createdAt".into(),
            crate::rfc3339::format(image.created as u64).into(),
        );
    }
    record
}

/// `/library/v2/...`: the OCI API, for library clients.
async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let rest = route::rest_of(request.uri().path());
    let mut req = Req::from_request(request);
    let result = async {
        let route = route::parse(&rest)?;
        if req.header("authorization").is_none() {
            return Err(access::demand_credentials(&state, &route, &req));
        }
        let ask = access::ask(&state, Some(&route), &req)?;
        req.caller = access::check(&state, ask).await?;
        handle(&state, route, req).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(state: &AppState, route: Route, req: Req) -> ApiResult {
    let read = req.method == Method::GET || req.method == Method::HEAD;
    match route {
        Route::Manifest { name, reference } if read => {
            let reference = super::manifests::parse_reference(&reference)?;
            let record = state
                .registry
                .repository(&name)
                .library_manifest(&reference)
                .await?;
            Ok(super::manifests::respond(record, &req.method))
        }
        Route::Blob { name, digest } if read => {
            match super::blobs::get(state, &name, &digest, req).await {
                Err(e) if e.code == Code::BlobUnknown => {
                    let digest: Digest = super::blobs::parse_digest(&digest)?;
                    let config = state
                        .registry
                        .repository(&name)
                        .library_config_blob(&digest)
                        .await
                        .map_err(|_| e)?;
                    Ok(derived_blob(&digest, config))
                }
                other => other,
            }
        }
        Route::Manifest { name, reference } if req.method == Method::PUT => {
            let reference = super::manifests::parse_reference(&reference)?;
            let mut req = req;
            let body = super::manifests::read_capped(&mut req).await?;
            let pushed = state
                .registry
                .repository(&name)
                .push_library_manifest(reference, req.header("content-type"), body)
                .await?;
            Ok(super::manifests::pushed_response(&name, &pushed))
        }
        route => super::handle(state, route, req).await,
    }
}

/// A config Berth derived, served as a blob.
fn derived_blob(digest: &Digest, content: bytes::Bytes) -> Response {
    let length = content.len();
    let mut response = Response::new(Body::from(content));
    let headers = response.headers_mut();
    headers.insert("content-type", hv("application/octet-stream"));
    headers.insert("content-length", hv(length.to_string()));
    headers.insert("docker-content-digest", hv(digest.to_string()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_records_name_their_parts() {
        let image = LibraryImage {
            manifest: "sha256:aa".into(),
            layer: Digest::of(crate::oci::digest::Algorithm::Sha256, b"sif"),
            size: 3,
            architecture: "arm64".into(),
            description: String::new(),
            signed: false,
            encrypted: false,
            fingerprints: vec![],
            created: 0,
        };
        let r = image_record("hpc/tools/gromacs", "v1", &image);
        assert_eq!(r["entityName"], "hpc");
        assert_eq!(r["collectionName"], "tools");
        assert_eq!(r["containerName"], "gromacs");
        assert_eq!(r["collection"], "hpc/tools");
        assert_eq!(r["arch"], "arm64");
        assert!(r["hash"].as_str().unwrap().starts_with("sha256."));
        assert!(r.get("createdAt").is_none());
    }
}
