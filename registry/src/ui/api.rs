//! The JSON API the web UI's views come from, for scripts too:
//!
//! - `GET /api/v1/repositories?q=&page=&per_page=`: repositories the caller
//!   may pull, with tag counts, sizes, last push and quota usage;
//! - `GET /api/v1/repositories/NAME?page=&per_page=`: its tags, newest
//!   push first, with digest, kind, size, platforms and push time;
//! - `GET /api/v1/repositories/NAME/-/manifests/REFERENCE`: a manifest
//!   described, with its referrers as a tree;
//! - `GET /api/v1/repositories/NAME/-/referrers/DIGEST`: that tree alone;
//! - `GET /api/v1/operations`: storage, uploads, maintenance (logged-in
//!   callers when access control is on).
//!
//! Callers authenticate as on `/v2/` (basic credentials, or a token from
//! `/auth/token`; the UI's session cookie works too). A repository the
//! caller may not pull answers 404 `NAME_UNKNOWN`, as one that does not
//! exist. Errors are the distribution spec's JSON.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Target, Visitor};
use crate::auth::Action;
use crate::http::AppState;
use crate::http::access;
use crate::http::errors::{ApiError, ApiResult, Code};
use crate::oci::names::TagOrDigest;
use crate::service::ServiceError;
use crate::service::browse::PageRequest;

const DEFAULT_PER_PAGE: u32 = 50;
const RECENT_RUNS: u32 = 20;

#[derive(Debug, Default, Deserialize)]
pub struct ApiQuery {
    q: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

impl ApiQuery {
    fn number(value: Option<&str>, what: &str) -> ApiResult<Option<u32>> {
        match value {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::new(
                    Code::PaginationNumberInvalid,
                    format!("{what} must be a non-negative integer, not `{v}`"),
                )
            }),
        }
    }

    fn page(&self) -> ApiResult<PageRequest> {
        Ok(PageRequest::new(
            Self::number(self.page.as_deref(), "page")?,
            Self::number(self.per_page.as_deref(), "per_page")?,
            DEFAULT_PER_PAGE,
        ))
    }
}

fn respond<T: serde::Serialize>(result: ApiResult<T>) -> Response {
    match result {
        Ok(body) => {
            let mut r = Json(body).into_response();
            r.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/repositories`
pub async fn repositories(
    State(state): State<AppState>,
    v: Visitor,
    Query(q): Query<ApiQuery>,
) -> Response {
    respond(
        async {
            let page = q.page()?;
            let visible = |name: &str| access::may_pull(&state, &v.caller, name);
            let query = q.q.as_deref().unwrap_or_default().trim();
            Ok(state
                .registry
                .repository_list(query, page, &visible)
                .await?)
        }
        .await,
    )
}

/// `GET /api/v1/repositories/NAME[/-/manifests/REF | /-/referrers/DIGEST]`
pub async fn repository(
    State(state): State<AppState>,
    v: Visitor,
    Path(rest): Path<String>,
    Query(q): Query<ApiQuery>,
) -> Response {
    let target = match Target::parse(&rest) {
        Some(Target::DeleteTag(..)) | None => {
            return crate::http::route::not_found().into_response();
        }
        Some(t) => t,
    };
    if !access::may(&state, &v.caller, target.name(), Action::Pull) {
        return ApiError::from(ServiceError::NameUnknown(target.name().to_string()))
            .into_response();
    }
    let repo = state.registry.repository(target.name());
    match &target {
        Target::Manifest(_, reference) => {
            respond(repo.manifest_view(reference).await.map_err(ApiError::from))
        }
        Target::Referrers(_, TagOrDigest::Digest(digest)) => respond(
            repo.referrers_tree(digest)
                .await
                .map(|(referrers, truncated)| {
                    serde_json::json!({
                        "digest": digest.to_string(),
                        "referrers": referrers,
                        "truncated": truncated,
                    })
                })
                .map_err(ApiError::from),
        ),
        _ => respond(async { Ok(repo.view(q.page()?).await?) }.await),
    }
}

/// `GET /api/v1/operations`
pub async fn operations(State(state): State<AppState>, v: Visitor) -> Response {
    if state.access.is_some() && v.user().is_none() {
        let e = ApiError::new(
            Code::Unauthorized,
            "log in to see the registry's operations",
        )
        .with_status(StatusCode::UNAUTHORIZED);
        return super::unauthorized(&state, &v.headers, e);
    }
    respond(
        state
            .registry
            .operations(RECENT_RUNS)
            .await
            .map_err(ApiError::from),
    )
}
