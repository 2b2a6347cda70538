//! `GET /v2/_catalog`: repository names the caller may pull, sorted, paginated.

use axum::Json;
use axum::response::IntoResponse;
use serde_json::json;

use super::errors::ApiResult;
use super::{AppState, Req, next_link, pagination};

pub async fn list(state: &AppState, req: Req) -> ApiResult {
    let (n, last) = pagination(&req.params)?;
    let may_pull = |name: &str| super::access::may_pull(state, &req.caller, name);
    let visible: Option<&(dyn Fn(&str) -> bool + Send + Sync)> = match state.access {
        Some(_) => Some(&may_pull),
        None => None,
    };
    let page = state.registry.catalog(last.as_deref(), n, visible).await?;
    let mut response = Json(json!({ "repositories": page.items })).into_response();
    if let (true, Some(n), Some(last)) = (page.more, n, page.items.last()) {
        response
            .headers_mut()
            .insert("link", next_link("/v2/_catalog", n, last));
    }
    Ok(response)
}
