//! `GET /v2/_catalog`: repository names, sorted, paginated.

use axum::Json;
use axum::response::IntoResponse;
use serde_json::json;

use super::errors::ApiResult;
use super::{AppState, Req, next_link, page, pagination};

pub async fn list(state: &AppState, req: Req) -> ApiResult {
    let (n, last) = pagination(&req.params)?;
    let names = if state.access.is_none() {
        state
            .meta
            .list_repositories(last.as_deref(), n.map(|n| n.saturating_add(1)))
            .await?
    } else {
        // Only what the caller may pull; filtered before paging so that
        // pages stay full. (A query per policy would scale better.)
        let all = state.meta.list_repositories(last.as_deref(), None).await?;
        let mut visible: Vec<String> = all
            .into_iter()
            .filter(|name| super::access::may_pull(state, &req.caller, name))
            .collect();
        if let Some(n) = n {
            visible.truncate(n as usize + 1);
        }
        visible
    };
    let (names, more) = page(names, n);
    let mut response = Json(json!({ "repositories": names })).into_response();
    if let (true, Some(n), Some(last)) = (more, n, names.last()) {
        response
            .headers_mut()
            .insert("link", next_link("/v2/_catalog", n, last));
    }
    Ok(response)
}
