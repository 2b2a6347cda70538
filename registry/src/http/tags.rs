//! `GET /v2/<name>/tags/list`: tags of a repository, sorted, paginated.

use axum::Json;
use axum::response::IntoResponse;
use serde_json::json;

use super::errors::{ApiError, ApiResult, Code};
use super::{AppState, Req, next_link, page, pagination};

pub async fn list(state: &AppState, name: &str, req: Req) -> ApiResult {
    let (n, last) = pagination(&req.params)?;
    let tags = state
        .meta
        .list_tags(name, last.as_deref(), n.map(|n| n.saturating_add(1)))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Code::NameUnknown,
                format!("repository `{name}` is not known"),
            )
        })?;
    let (tags, more) = page(tags, n);
    let mut response = Json(json!({ "name": name, "tags": tags })).into_response();
    if let (true, Some(n), Some(last)) = (more, n, tags.last()) {
        let path = format!("/v2/{name}/tags/list");
        response
            .headers_mut()
            .insert("link", next_link(&path, n, last));
    }
    Ok(response)
}
