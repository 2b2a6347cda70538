//! The HTTP API: the distribution spec's endpoints, one file per area.
//! Handlers parse requests, call the [`service`](crate::service) and shape
//! responses; they hold no rules, no SQL and no paths. Access control runs
//! at the edge (`access`), every failure becomes the spec's error in one
//! place (`errors`), and `server` is the accept loop with its limits.

pub(crate) mod access;
mod blobs;
mod catalog;
pub(crate) mod challenge;
mod drained;
pub mod errors;
mod library;
mod manifests;
pub mod observe;
pub mod ops;
pub mod range;
mod referrers;
mod request_id;
pub mod route;
pub mod server;
mod sif;
pub mod stream;
mod tags;
mod token;
mod uploads;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use berth_config::readyz;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

use crate::auth::AccessControl;
use crate::mirror;
use crate::service::Registry;
use errors::{ApiError, ApiResult, Code};
use request_id::MakeCounterId;
use route::Route;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// None: access control is off.
    pub access: Option<Arc<AccessControl>>,
    /// Set on SIGTERM: /readyz answers 503 so that load balancers stop
    /// sending requests before the listener closes.
    pub stopping: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/v2", any(version_check))
        .route("/v2/", any(version_check))
        .route("/v2/{*rest}", any(dispatch))
        .route("/auth/token", any(token_endpoint))
        .merge(library::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .merge(crate::ui::router())
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(no_such_method)
        .layer(middleware::from_fn(api_version_header))
        .layer(middleware::from_fn(observe::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeCounterId))
        .with_state(state)
}

async fn api_version_header(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn version_check(State(state): State<AppState>, request: Request) -> Response {
    let req = Req::from_request(request);
    if req.method != Method::GET && req.method != Method::HEAD {
        return method_not_allowed(&req.method).into_response();
    }
    let result = match access::ask(&state, None, &req) {
        Ok(ask) => access::check(&state, ask).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => ([("content-type", "application/json")], "{}").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn token_endpoint(State(state): State<AppState>, request: Request) -> Response {
    let req = Req::from_request(request);
    let Some(access) = &state.access else {
        return ApiError::new(
            Code::Unsupported,
            "access control is off: no tokens are needed",
        )
        .with_status(StatusCode::NOT_FOUND)
        .into_response();
    };
    if req.method != Method::GET && req.method != Method::POST {
        return method_not_allowed(&req.method).into_response();
    }
    token::issue(access, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.stopping.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, readyz::SHUTTING_DOWN).into_response();
    }
    // Both stores must answer: a replica whose database or bucket is gone
    // is taken out of the Service until they come back.
    let (meta, blobs) = tokio::join!(state.registry.meta.ping(), state.registry.blobs.ping());
    let mut down = Vec::new();
    if let Err(e) = meta {
        tracing::warn!(
            error = crate::report::chain(&e),
            "not ready: metadata store"
        );
        down.push(readyz::METADATA_UNREACHABLE);
    }
    if let Err(e) = blobs {
        tracing::warn!(error = crate::report::chain(&e), "not ready: blob store");
        down.push(readyz::BLOBS_UNREACHABLE);
    }
    if down.is_empty() {
        readyz::READY.into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            down.join(readyz::SEPARATOR),
        )
            .into_response()
    }
}

async fn no_such_endpoint() -> Response {
    route::not_found().into_response()
}

async fn no_such_method(method: Method) -> Response {
    method_not_allowed(&method).into_response()
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        Code::Unsupported,
        format!("method {method} is not supported here"),
    )
}

/// Query parameters, in order, repeated keys kept (`?tag=a&tag=b`).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything a handler may need from the request.
pub struct Req {
    pub method: Method,
    pub params: Params,
    pub headers: HeaderMap,
    pub body: Body,
    /// The peer address, for rate limits.
    pub client: Option<std::net::IpAddr>,
    /// The connection it came on.
    pub connection: Option<u64>,
    /// Who is asking, once access control has looked.
    pub caller: access::Caller,
}

impl Req {
    fn from_request(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        Req {
            client: parts
                .extensions
                .get::<ConnectInfo<crate::http::stream::ClientAddr>>()
                .map(|c| c.0.0.ip()),
            connection: parts
                .extensions
                .get::<crate::http::stream::ConnectionId>()
                .map(|c| c.0),
            method: parts.method,
            params: Params::parse(parts.uri.query()),
            headers: parts.headers,
            body,
            caller: access::Caller::anonymous(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body, for a service: a stream of chunks with the announced length.
    pub fn into_body(self) -> crate::service::Body {
        use futures::{StreamExt, TryStreamExt};
        let length = self
            .header("content-length")
            .and_then(|l| l.trim().parse().ok());
        crate::service::Body {
            stream: self
                .body
                .into_data_stream()
                .map_err(std::io::Error::other)
                .boxed(),
            length,
        }
    }
}

async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    // The path is decoded here, not by an extractor: a path that is not
    // UTF-8 must get the spec's JSON error, not the framework's plain text.
    let rest = route::rest_of(request.uri().path());
    let mut req = Req::from_request(request);
    let result = async {
        let mut route = route::parse(&rest)?;
        // A mirrored image asked for by its upstream name (`?ns=`), or with
        // Docker Hub's implicit `library/`: the local repository it means.
        if let Some(name) = route.name_mut()
            && let Some(local) =
                mirror::addressing::local_name(&state.registry.mirrors, name, req.params.get("ns"))
        {
            *name = local;
        }
        let ask = access::ask(&state, Some(&route), &req)?;
        req.caller = access::check(&state, ask).await?;
        handle(&state, route, req).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn handle(state: &AppState, route: Route, req: Req) -> ApiResult {
    let m = &req.method;
    match route {
        Route::Catalog if m == Method::GET => catalog::list(state, req).await,
        Route::Tags { name } if m == Method::GET => tags::list(state, &name, req).await,
        Route::Manifest { name, reference } => match *m {
            Method::GET | Method::HEAD => manifests::get(state, &name, &reference, req).await,
            Method::PUT => manifests::put(state, &name, &reference, req).await,
            Method::DELETE => manifests::delete(state, &name, &reference).await,
            _ => Err(method_not_allowed(m)),
        },
        Route::Blob { name, digest } => match *m {
            Method::GET | Method::HEAD => blobs::get(state, &name, &digest, req).await,
            Method::DELETE => blobs::delete(state, &name, &digest).await,
            _ => Err(method_not_allowed(m)),
        },
        Route::Uploads { name } if m == Method::POST => uploads::start(state, &name, req).await,
        Route::Upload { name, id } => match *m {
            Method::GET => uploads::status(state, &name, &id).await,
            Method::PATCH => uploads::patch(state, &name, &id, req).await,
            Method::PUT => uploads::finish(state, &name, &id, req).await,
            Method::DELETE => uploads::cancel(state, &name, &id).await,
            _ => Err(method_not_allowed(m)),
        },
        Route::Referrers { name, digest } if m == Method::GET => {
            referrers::list(state, &name, &digest, req).await
        }
        Route::Sif { name, reference } if m == Method::GET => {
            sif::get(state, &name, &reference).await
        }
        _ => Err(method_not_allowed(m)),
    }
}

/// A header value from a string we built (digests, names, numbers: always ASCII).
pub fn hv(s: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(s.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Parses `n` and `last` for the paginated listings.
pub fn pagination(params: &Params) -> ApiResult<(Option<u32>, Option<String>)> {
    let n = match params.get("n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            ApiError::new(
                Code::PaginationNumberInvalid,
                format!("n must be a non-negative integer, not `{v}`"),
            )
        })?),
    };
    Ok((
        n,
        params
            .get("last")
            .filter(|l| !l.is_empty())
            .map(str::to_string),
    ))
}

/// The `Link` header pointing at the next page.
pub fn next_link(path: &str, n: u32, last: &str) -> HeaderValue {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("n", &n.to_string())
        .append_pair("last", last)
        .finish();
    hv(format!("<{path}?{query}>; rel=\"next\""))
}
