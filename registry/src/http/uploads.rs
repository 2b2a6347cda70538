//! Blob uploads: `POST .../blobs/uploads/` (session, single-POST monolithic,
//! cross-repository mount), `PATCH` (chunked with `Content-Range`, or
//! streamed), `PUT ?digest=` to finish, `GET` for status, `DELETE` to cancel.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::access;
use super::blobs::parse_digest;
use super::errors::{ApiError, ApiResult, Code, received_range};
use super::range::parse_content_range;
use super::{AppState, Req, hv};
use crate::oci::digest::Digest;
use crate::oci::names::is_valid_name;
use crate::service::uploads::MountSource;

fn accepted(name: &str, id: &str, size: u64, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert("location", hv(format!("/v2/{name}/blobs/uploads/{id}")));
    headers.insert("range", hv(received_range(size)));
    headers.insert("docker-upload-uuid", hv(id));
    headers.insert("content-length", hv("0"));
    response
}

fn created(name: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert("location", hv(format!("/v2/{name}/blobs/{digest}")));
    headers.insert("docker-content-digest", hv(digest.to_string()));
    headers.insert("content-length", hv("0"));
    response
}

/// The `Content-Range` of a PATCH or PUT, if any.
fn content_range(req: &Req) -> ApiResult<Option<(u64, u64)>> {
    let Some(value) = req.header("content-range") else {
        return Ok(None);
    };
    match parse_content_range(value) {
        Some(range) => Ok(Some(range)),
        None => Err(ApiError::new(
            Code::RangeInvalid,
            format!("Content-Range `{value}` is not of the form <start>-<end>"),
        )),
    }
}

pub async fn start(state: &AppState, name: &str, req: Req) -> ApiResult {
    let repo = state.registry.repository(name);
    if let Some(mount) = req.params.get("mount") {
        let digest = parse_digest(mount)?;
        let mounted = match req.params.get("from") {
            Some(from) if !is_valid_name(from) => {
                return Err(ApiError::new(
                    Code::NameInvalid,
                    format!("invalid repository name `{from}`"),
                ));
            }
            Some(from) => repo.mount(&digest, MountSource::Repository(from)).await?,
            None if state.access.is_none() => {
                repo.mount(&digest, MountSource::Any(&|_| true)).await?
            }
            None => {
                let may_pull = |r: &str| access::may_pull(state, &req.caller, r);
                repo.mount(&digest, MountSource::Any(&may_pull)).await?
            }
        };
        if mounted {
            return Ok(created(name, &digest));
        }
        // Not mountable: a new upload session, as the spec says.
    } else if let Some(digest) = req.params.get("digest") {
        let digest = parse_digest(digest)?;
        repo.upload_whole(&digest, req.into_body()).await?;
        return Ok(created(name, &digest));
    }
    let id = repo.start_upload().await?;
    Ok(accepted(name, &id, 0, StatusCode::ACCEPTED))
}

pub async fn patch(state: &AppState, name: &str, id: &str, req: Req) -> ApiResult {
    let range = content_range(&req)?;
    let size = state
        .registry
        .repository(name)
        .append(id, range, req.into_body())
        .await?;
    Ok(accepted(name, id, size, StatusCode::ACCEPTED))
}

pub async fn finish(state: &AppState, name: &str, id: &str, req: Req) -> ApiResult {
    let digest = match req.params.get("digest") {
        Some(d) => parse_digest(d)?,
        None => {
            return Err(ApiError::new(
                Code::DigestInvalid,
                "the digest query parameter is required to finish an upload",
            ));
        }
    };
    let range = content_range(&req)?;
    let empty = req
        .header("content-length")
        .is_some_and(|l| l.trim() == "0")
        || (req.header("content-length").is_none() && req.header("transfer-encoding").is_none());
    let body = (!empty).then(|| req.into_body());
    state
        .registry
        .repository(name)
        .finish(id, &digest, range, body)
        .await?;
    Ok(created(name, &digest))
}

pub async fn status(state: &AppState, name: &str, id: &str) -> ApiResult {
    let upload = state.registry.repository(name).upload(id).await?;
    Ok(accepted(name, id, upload.size, StatusCode::NO_CONTENT))
}

pub async fn cancel(state: &AppState, name: &str, id: &str) -> ApiResult {
    state.registry.repository(name).cancel_upload(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
