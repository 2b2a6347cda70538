//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::errors::{ApiError, ApiResult, Code};
use super::{AppState, Req, hv};
use crate::meta::ManifestRecord;
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::names::{ReferenceError, TagOrDigest};
use crate::service::manifests::PushedManifest;

pub(super) fn parse_reference(reference: &str) -> ApiResult<TagOrDigest> {
    reference.parse().map_err(|e: ReferenceError| match e {
        ReferenceError::Digest(d) => ApiError::new(Code::DigestInvalid, d.to_string()),
        tag @ ReferenceError::Tag(_) => ApiError::new(Code::ManifestInvalid, tag.to_string()),
    })
}

pub async fn get(state: &AppState, name: &str, reference: &str, req: Req) -> ApiResult {
    let reference = parse_reference(reference)?;
    let record = state.registry.repository(name).manifest(&reference).await?;
    Ok(respond(record, &req.method))
}

/// A stored manifest as a GET or HEAD answers it.
pub(super) fn respond(record: ManifestRecord, method: &Method) -> Response {
    let length = record.content.len();
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(record.content)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert("content-type", hv(&record.media_type));
    headers.insert("content-length", hv(length.to_string()));
    headers.insert("docker-content-digest", hv(&record.digest));
    headers.insert("etag", hv(format!("\"{}\"", record.digest)));
    response
}

/// Reads the body, refusing more than the manifest size cap without reading it all.
pub(super) async fn read_capped(req: &mut Req) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            Code::SizeInvalid,
            format!("manifest is larger than the {MAX_MANIFEST_BYTES}-byte limit"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if req
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > MAX_MANIFEST_BYTES)
    {
        return Err(too_large());
    }
    let mut stream = std::mem::take(&mut req.body).into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(Code::ManifestInvalid, format!("reading body: {e}")))?;
        if buf.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

pub async fn put(state: &AppState, name: &str, reference: &str, mut req: Req) -> ApiResult {
    let reference = parse_reference(reference)?;
    let body = read_capped(&mut req).await?;
    // `PUT .../manifests/<digest>?tag=a&tag=b` (spec 1.1.1) tags in the same request.
    let extra_tags = req.params.all("tag").map(str::to_string).collect();
    let pushed = state
        .registry
        .repository(name)
        .push_manifest(reference, extra_tags, req.header("content-type"), body)
        .await?;
    Ok(pushed_response(name, &pushed))
}

/// 201 for a stored manifest, with what a client learns from it.
pub(super) fn pushed_response(name: &str, pushed: &PushedManifest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        "location",
        hv(format!("/v2/{name}/manifests/{}", pushed.digest)),
    );
    headers.insert("docker-content-digest", hv(pushed.digest.to_string()));
    headers.insert("content-length", hv("0"));
    // One `OCI-Tag` per tag applied, so a client of `?tag=` knows which took.
    for tag in &pushed.tags {
        headers.append("oci-tag", hv(tag));
    }
    if let Some(subject) = &pushed.subject {
        headers.insert("oci-subject", hv(subject.to_string()));
    }
    response
}

pub async fn delete(state: &AppState, name: &str, reference: &str) -> ApiResult {
    let reference = parse_reference(reference)?;
    state
        .registry
        .repository(name)
        .delete_manifest(&reference)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
