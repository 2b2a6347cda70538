//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with `Range` on GET.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::{ApiError, ApiResult, Code};
use super::range::{RangeRequest, parse_range};
use super::{AppState, Req, hv};
use crate::digest::Digest;

pub fn parse_digest(s: &str) -> ApiResult<Digest> {
    s.parse()
        .map_err(|e| ApiError::new(Code::DigestInvalid, format!("{e}")))
}

fn blob_unknown(name: &str, digest: &Digest) -> ApiError {
    ApiError::new(
        Code::BlobUnknown,
        format!("blob {digest} is not in repository `{name}`"),
    )
}

pub async fn get(state: &AppState, name: &str, digest: &str, req: Req) -> ApiResult {
    let digest = parse_digest(digest)?;
    let size = state
        .meta
        .repository_blob(name, &digest)
        .await?
        .ok_or_else(|| blob_unknown(name, &digest))?;

    let (status, range) = match parse_range(req.header("range"), size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeRequest::Unsatisfiable => {
            let mut e = ApiError::new(
                Code::RangeInvalid,
                format!("range is outside the blob's {size} bytes"),
            );
            e.range = None;
            let mut response = e.into_response();
            response
                .headers_mut()
                .insert("content-range", hv(format!("bytes */{size}")));
            return Ok(response);
        }
    };
    let length = range.as_ref().map_or(size, |r| r.end - r.start);

    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        let stream = match state.blobs.get(&digest, range.clone()).await {
            Ok(s) => s,
            Err(
                crate::storage::StorageError::BlobMissing(_)
                | crate::storage::StorageError::Store(object_store::Error::NotFound { .. }),
            ) => {
                tracing::error!(%digest, "metadata lists a blob that storage does not have");
                return Err(blob_unknown(name, &digest));
            }
            Err(e) => return Err(e.into()),
        };
        Body::from_stream(stream)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", hv("application/octet-stream"));
    headers.insert("content-length", hv(length.to_string()));
    headers.insert("docker-content-digest", hv(digest.to_string()));
    headers.insert("etag", hv(format!("\"{digest}\"")));
    headers.insert("accept-ranges", hv("bytes"));
    headers.insert("cache-control", hv("max-age=31536000"));
    if let Some(r) = range {
        headers.insert(
            "content-range",
            hv(format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        );
    }
    Ok(response)
}

pub async fn delete(state: &AppState, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest(digest)?;
    if state.meta.unlink_blob(name, &digest).await? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(blob_unknown(name, &digest))
    }
}
