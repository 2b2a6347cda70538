//! Blob uploads: `POST .../blobs/uploads/` (session, single-POST monolithic,
//! cross-repository mount), `PATCH` (chunked with `Content-Range`, or
//! streamed), `PUT ?digest=` to finish, `GET` for status, `DELETE` to cancel.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::access::{self, Caller};
use super::blobs::parse_digest;
use super::errors::{ApiError, ApiResult, Code};
use super::range::parse_content_range;
use super::{AppState, Req, hv};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::meta::{NewPart, Upload};
use crate::names::is_valid_name;
use crate::publish::{Publication, publish};

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range` as upload responses report it: the bytes received so far.
fn received_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn accepted(name: &str, id: &str, size: u64, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert("location", hv(upload_location(name, id)));
    headers.insert("range", hv(received_range(size)));
    headers.insert("docker-upload-uuid", hv(id));
    headers.insert("content-length", hv("0"));
    response
}

fn digest_mismatch(actual: &Digest, expected: &Digest) -> ApiError {
    ApiError::new(
        Code::DigestInvalid,
        format!("uploaded content has digest {actual}, not {expected}"),
    )
}

fn created(name: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert("location", hv(format!("/v2/{name}/blobs/{digest}")));
    headers.insert("docker-content-digest", hv(digest.to_string()));
    headers.insert("content-length", hv("0"));
    response
}

async fn load(state: &AppState, name: &str, id: &str) -> ApiResult<Upload> {
    let unknown = || {
        ApiError::new(
            Code::BlobUploadUnknown,
            format!("upload `{id}` is not in progress for repository `{name}`"),
        )
    };
    // Session ids are UUIDs we issued; anything else never reaches the stores.
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(unknown());
    }
    match state.meta.upload(id).await? {
        Some(u) if u.repository == name => Ok(u),
        _ => Err(unknown()),
    }
}

/// Removes an upload's session, then its data (an orphaned part is swept
/// later; a session without its parts would not be).
async fn discard(state: &AppState, id: &str) -> ApiResult<()> {
    state.meta.delete_upload(id).await?;
    state.blobs.delete_upload(id).await?;
    Ok(())
}

/// After publishing, the session is over either way (a refused client
/// starts again). A published blob's link already removed the session row.
async fn end_session(state: &AppState, id: &str, published: bool) -> ApiResult<()> {
    if published {
        state.blobs.delete_upload(id).await?;
        Ok(())
    } else {
        discard(state, id).await
    }
}

/// The `Content-Range` of a PATCH, if any.
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

/// Streams the request body into the upload as its next part. Returns the
/// upload's new size.
async fn append(state: &AppState, upload: &Upload, req: Req) -> ApiResult<u64> {
    let range = content_range(&req)?;
    if let Some((start, _)) = range
        && start != upload.size
    {
        let mut e = ApiError::new(
            Code::RangeInvalid,
            format!(
                "chunk starts at {start} but the upload has {} bytes",
                upload.size
            ),
        );
        e.range = Some(received_range(upload.size));
        return Err(e);
    }

    let mut hasher = match (&upload.hash_state, upload.size) {
        (_, 0) => Some(Hasher::new(Algorithm::Sha256)),
        (Some(state), _) => Hasher::sha256_from_state(state),
        (None, _) => None,
    };
    let part = format!("{:020}-{}", upload.size, uuid::Uuid::new_v4().simple());
    let body = req.body.into_data_stream();
    let written = state
        .blobs
        .write_part(&upload.id, &part, body, hasher.as_mut())
        .await?;

    let rejected = match range {
        Some((start, end)) if written != end - start + 1 => Some(ApiError::new(
            Code::SizeInvalid,
            format!(
                "Content-Range announced {} bytes, body had {written}",
                end - start + 1
            ),
        )),
        _ if written == 0 => None,
        _ => {
            // The part is on disk already (write_part returns then): a
            // session row that survives a power failure never describes
            // bytes that were not written.
            let new_part = NewPart {
                name: &part,
                size: written,
                hash_state: hasher.as_ref().and_then(Hasher::to_state),
            };
            if state
                .meta
                .append_upload_part(&upload.id, upload.size, new_part)
                .await?
            {
                return Ok(upload.size + written);
            }
            let mut e = ApiError::new(
                Code::RangeInvalid,
                "another request appended to this upload first",
            );
            e.range = Some(received_range(upload.size));
            Some(e)
        }
    };
    // Nothing recorded: drop the part object again.
    state.blobs.delete_upload_part(&upload.id, &part).await?;
    match rejected {
        Some(e) => Err(e),
        None => Ok(upload.size),
    }
}

/// Verifies and publishes an upload's bytes as `digest`, links it into the
/// repository and removes the session.
async fn commit(state: &AppState, name: &str, upload: &Upload, digest: &Digest) -> ApiResult {
    let hashed = match (digest.algorithm(), upload.size, &upload.hash_state) {
        (alg, 0, _) => Some(Digest::of(alg, b"")),
        (Algorithm::Sha256, _, Some(s)) => Hasher::sha256_from_state(s).map(Hasher::finish),
        _ => None,
    };
    if let Some(actual) = hashed.as_ref().filter(|h| *h != digest) {
        discard(state, &upload.id).await?;
        return Err(digest_mismatch(actual, digest));
    }
    let settings = state.settings(name);
    let publication = Publication {
        repo: name,
        digest,
        size: upload.size,
        verified: hashed.is_some(),
        quotas: &settings.quotas,
        upload: Some(&upload.id),
    };
    let published = publish(state.meta.as_ref(), publication, || {
        state
            .blobs
            .commit_upload(&upload.id, &upload.parts, digest, hashed.clone())
    })
    .await;
    end_session(state, &upload.id, published.is_ok()).await?;
    published?;
    Ok(created(name, digest))
}

pub async fn start(state: &AppState, name: &str, req: Req) -> ApiResult {
    if let Some(mount) = req.params.get("mount") {
        let digest = parse_digest(mount)?;
        let source = match req.params.get("from") {
            Some(from) if !is_valid_name(from) => {
                return Err(ApiError::new(
                    Code::NameInvalid,
                    format!("invalid repository name `{from}`"),
                ));
            }
            Some(from) => state.meta.repository_blob(from, &digest).await?.is_some(),
            None => automatic_mount_source(state, &req.caller, &digest).await?,
        };
        if source
            && state
                .meta
                .mount_blob(name, &digest, &state.settings(name).quotas)
                .await?
        {
            return Ok(created(name, &digest));
        }
        // Not mountable: fall back to a new upload session, as the spec says.
    } else if let Some(digest) = req.params.get("digest") {
        return monolithic(state, name, parse_digest(digest)?, req).await;
    }
    let id = uuid::Uuid::new_v4().to_string();
    state.meta.create_upload(name, &id).await?;
    Ok(accepted(name, &id, 0, StatusCode::ACCEPTED))
}

/// Repositories an automatic mount (spec 1.1: `?mount=` without `from`)
/// looks at for the blob.
const AUTOMATIC_MOUNT_CANDIDATES: u32 = 1000;

/// Whether an automatic mount may link `digest`: only from a repository the
/// caller may pull, so that it never hands out bytes the caller could not
/// read, nor tells whether a digest exists elsewhere (a refused mount is a
/// new upload session, the same answer as for a digest stored nowhere).
async fn automatic_mount_source(
    state: &AppState,
    caller: &Caller,
    digest: &Digest,
) -> ApiResult<bool> {
    if state.access.is_none() {
        return Ok(state.meta.blob(digest).await?.is_some());
    }
    let holders = state
        .meta
        .blob_repositories(digest, AUTOMATIC_MOUNT_CANDIDATES)
        .await?;
    Ok(holders
        .iter()
        .any(|repo| access::may_pull(state, caller, repo)))
}

/// `POST ?digest=` with the whole blob as body.
async fn monolithic(state: &AppState, name: &str, digest: Digest, req: Req) -> ApiResult {
    if let Some(len) = whole_body_len(state, &req) {
        publish_whole(state, name, &digest, req, len, None).await?;
        return Ok(created(name, &digest));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let result = publish_body(state, name, &id, &digest, req, false).await;
    state.blobs.delete_upload(&id).await?;
    result?;
    Ok(created(name, &digest))
}

/// The announced length of a body small enough to read into memory.
fn whole_body_len(state: &AppState, req: &Req) -> Option<usize> {
    req.header("content-length")?
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|len| *len <= state.blobs.whole_body_limit())
}

/// Publishes a small body that is the whole blob: read into memory, hashed,
/// and written to its place in one durable write, with no upload storage
/// at all. `session`: the upload session the link ends.
async fn publish_whole(
    state: &AppState,
    name: &str,
    digest: &Digest,
    req: Req,
    len: usize,
    session: Option<&str>,
) -> ApiResult<()> {
    let data = axum::body::to_bytes(req.body, len)
        .await
        .map_err(|e| ApiError::new(Code::SizeInvalid, format!("reading the blob: {e}")))?;
    if data.len() != len {
        return Err(ApiError::new(
            Code::SizeInvalid,
            format!(
                "Content-Length announced {len} bytes, body had {}",
                data.len()
            ),
        ));
    }
    let hashed = Digest::of(digest.algorithm(), &data);
    if &hashed != digest {
        return Err(digest_mismatch(&hashed, digest));
    }
    let settings = state.settings(name);
    let publication = Publication {
        repo: name,
        digest,
        size: len as u64,
        verified: true,
        quotas: &settings.quotas,
        upload: session,
    };
    publish(state.meta.as_ref(), publication, || async {
        state.blobs.put_verified(digest, data).await?;
        Ok(len as u64)
    })
    .await?;
    Ok(())
}

/// Streams a body that is the whole blob into upload `id`'s storage,
/// hashing it on the way, and publishes it as `digest` (no session update
/// in between: the bytes go from the request to their place). `session`:
/// `id` is a session, which the link ends.
async fn publish_body(
    state: &AppState,
    name: &str,
    id: &str,
    digest: &Digest,
    req: Req,
    session: bool,
) -> ApiResult<()> {
    // Its own part name: two closing PUTs of one session never share a file.
    let part = format!("whole-{}", uuid::Uuid::new_v4().simple());
    let mut hasher = Hasher::new(digest.algorithm());
    let body = req.body.into_data_stream();
    let size = state
        .blobs
        .write_part(id, &part, body, Some(&mut hasher))
        .await?;
    let hashed = hasher.finish();
    if &hashed != digest {
        return Err(digest_mismatch(&hashed, digest));
    }
    let settings = state.settings(name);
    let parts = [part];
    let publication = Publication {
        repo: name,
        digest,
        size,
        verified: true,
        quotas: &settings.quotas,
        upload: session.then_some(id),
    };
    publish(state.meta.as_ref(), publication, || {
        state
            .blobs
            .commit_upload(id, &parts, digest, Some(hashed.clone()))
    })
    .await?;
    Ok(())
}

pub async fn patch(state: &AppState, name: &str, id: &str, req: Req) -> ApiResult {
    let upload = load(state, name, id).await?;
    let size = append(state, &upload, req).await?;
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
    let mut upload = load(state, name, id).await?;
    let empty_body = req
        .header("content-length")
        .is_some_and(|l| l.trim() == "0")
        || (req.header("content-length").is_none() && req.header("transfer-encoding").is_none());
    if !empty_body {
        if upload.size == 0 && req.header("content-range").is_none() {
            // The whole blob in the closing PUT (what most clients send
            // after their POST): published straight from the body.
            let published = match whole_body_len(state, &req) {
                Some(len) => publish_whole(state, name, &digest, req, len, Some(id)).await,
                None => publish_body(state, name, id, &digest, req, true).await,
            };
            end_session(state, id, published.is_ok()).await?;
            published?;
            return Ok(created(name, &digest));
        }
        append(state, &upload, req).await?;
        upload = load(state, name, id).await?;
    }
    commit(state, name, &upload, &digest).await
}

pub async fn status(state: &AppState, name: &str, id: &str) -> ApiResult {
    let upload = load(state, name, id).await?;
    Ok(accepted(name, id, upload.size, StatusCode::NO_CONTENT))
}

pub async fn cancel(state: &AppState, name: &str, id: &str) -> ApiResult {
    load(state, name, id).await?;
    discard(state, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
