//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with `Range` on GET.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::{ApiError, ApiResult, Code};
use super::range::{RangeRequest, parse_range};
use super::{AppState, Req, hv};
use crate::oci::digest::Digest;
use crate::service::ServiceError;
use crate::service::mirrored::Fetched;

pub fn parse_digest(s: &str) -> ApiResult<Digest> {
    s.parse()
        .map_err(|e| ApiError::new(Code::DigestInvalid, format!("{e}")))
}

pub async fn get(state: &AppState, name: &str, digest: &str, req: Req) -> ApiResult {
    let digest = parse_digest(digest)?;
    let repo = state.registry.repository(name);
    let size = match repo.blob_size(&digest).await {
        Ok(size) => {
            repo.mirror_hit();
            size
        }
        Err(ServiceError::BlobUnknown { .. }) if repo.mirror.is_some() => {
            // Not cached yet: from the mirror's upstream.
            if req.method == Method::HEAD {
                let size = repo.upstream_blob_size(&digest).await?;
                return Ok(blob_response(
                    StatusCode::OK,
                    Body::empty(),
                    &digest,
                    size,
                    None,
                    size,
                ));
            }
            match state.registry.mirrored_blob(name, &digest).await? {
                Fetched::Stored => repo.blob_size(&digest).await?,
                // Streamed whole as it arrives (a Range is served once cached).
                Fetched::Streaming { size, stream } => {
                    let body = Body::from_stream(stream);
                    return Ok(blob_response(
                        StatusCode::OK,
                        body,
                        &digest,
                        size,
                        None,
                        size,
                    ));
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    if req.method == Method::GET
        && let Some(url) = repo.blob_redirect(&digest).await?
    {
        // The store serves the bytes (and the Range) itself.
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        response.headers_mut().insert("location", hv(url));
        response
            .headers_mut()
            .insert("docker-content-digest", hv(digest.to_string()));
        return Ok(response);
    }
    let (status, range) = match parse_range(req.header("range"), size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeRequest::Unsatisfiable => {
            let mut response = ApiError::new(
                Code::RangeInvalid,
                format!("range is outside the blob's {size} bytes"),
            )
            .into_response();
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
        Body::from_stream(repo.read_blob(&digest, range.clone()).await?)
    };
    Ok(blob_response(status, body, &digest, length, range, size))
}

/// A blob's response: its headers, for all of it or `range` (of `size`).
fn blob_response(
    status: StatusCode,
    body: Body,
    digest: &Digest,
    length: u64,
    range: Option<std::ops::Range<u64>>,
    size: u64,
) -> Response {
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
    response
}

pub async fn delete(state: &AppState, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest(digest)?;
    state.registry.repository(name).delete_blob(&digest).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
