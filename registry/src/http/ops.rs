//! The operations endpoints beside `/metrics`, on the metrics listener
//! (`berth_config::ops`): which policy file this process has loaded, and
//! what the repositories of a pattern hold. The operator reads them to tell
//! when a Repository's rules are served and what it stores. They are for
//! the cluster's operators, as `/metrics` is: nothing here is served on the
//! API's listener.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_config::ops;

use super::AppState;
use crate::maintenance;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(ops::STATUS_PATH, get(status))
        .route(ops::USAGE_PATH, get(usage))
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Json<ops::Status> {
    Json(ops::Status {
        policy_sha256: state
            .access
            .as_ref()
            .map(|a| a.policy.get().sha256().to_string()),
    })
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    repository: Option<String>,
}

async fn usage(State(state): State<AppState>, Query(q): Query<UsageQuery>) -> Response {
    let Some(pattern) = q.repository.filter(|p| !p.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("?{}=NAME or PATTERN is required", ops::USAGE_REPOSITORY),
        )
            .into_response();
    };
    match maintenance::pattern_usage(state.registry.meta.as_ref(), &pattern).await {
        Ok(usage) => Json(usage).into_response(),
        Err(e) => {
            tracing::warn!(
                error = crate::report::chain(&e),
                "usage: reading the metadata failed"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "metadata store unreachable",
            )
                .into_response()
        }
    }
}
