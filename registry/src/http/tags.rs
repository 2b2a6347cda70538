//! `GET /v2/<name>/tags/list`: tags of a repository, sorted, paginated.

use axum::Json;
use axum::response::IntoResponse;
use serde_json::json;

use super::errors::ApiResult;
use super::{AppState, Req, next_link, pagination};

pub async fn list(state: &AppState, name: &str, req: Req) -> ApiResult {
    let (n, last) = pagination(&req.params)?;
    let page = state
        .registry
        .repository(name)
        .tags(last.as_deref(), n)
        .await?;
    let mut response = Json(json!({ "name": name, "tags": page.items })).into_response();
    if let (true, Some(n), Some(last)) = (page.more, n, page.items.last()) {
        let path = format!("/v2/{name}/tags/list");
        response
            .headers_mut()
            .insert("link", next_link(&path, n, last));
    }
    Ok(response)
}
