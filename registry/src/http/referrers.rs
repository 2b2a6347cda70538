//! `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose
//! `subject` is the digest, optionally filtered by `artifactType`.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

use super::blobs::parse_digest;
use super::errors::ApiResult;
use super::{AppState, Req};
use crate::oci::manifest::OCI_INDEX;

pub async fn list(state: &AppState, name: &str, digest: &str, req: Req) -> ApiResult {
    let subject = parse_digest(digest)?;
    let artifact_type = req.params.get("artifactType").filter(|t| !t.is_empty());
    let referrers = state
        .registry
        .repository(name)
        .referrers(&subject, artifact_type)
        .await?;
    let manifests: Vec<Value> = referrers
        .into_iter()
        .map(|r| {
            let mut d = Map::new();
            d.insert("mediaType".into(), r.media_type.into());
            d.insert("digest".into(), r.digest.into());
            d.insert("size".into(), r.size.into());
            if let Some(t) = r.artifact_type {
                d.insert("artifactType".into(), t.into());
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<Value>(&a).ok())
            {
                d.insert("annotations".into(), a);
            }
            Value::Object(d)
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut headers = vec![("content-type", OCI_INDEX)];
    if artifact_type.is_some() {
        headers.push(("oci-filters-applied", "artifactType"));
    }
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    for (k, v) in headers {
        response.headers_mut().insert(k, super::hv(v));
    }
    Ok(response)
}
