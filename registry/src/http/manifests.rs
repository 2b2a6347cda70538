//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//! The exact bytes pushed are the bytes served; the digest is theirs.

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::blobs::parse_digest;
use super::errors::{ApiError, ApiResult, Code};
use super::{AppState, Req, hv};
use crate::digest::{Algorithm, Digest};
use crate::manifest::{self, Descriptor, MAX_MANIFEST_BYTES};
use crate::meta::{MetaError, NewManifest, Reference};
use crate::names::is_valid_tag;
use crate::publish::{Publication, publish};

/// Contents some clients reference without uploading them: the empty JSON
/// object (the config of artifacts) and zero bytes (old SIF pushes).
const WELL_KNOWN: [&[u8]; 2] = [b"{}", b""];

enum Ref {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(reference: &str) -> ApiResult<Ref> {
    if reference.contains(':') {
        Ok(Ref::Digest(parse_digest(reference)?))
    } else if is_valid_tag(reference) {
        Ok(Ref::Tag(reference.to_string()))
    } else {
        Err(ApiError::new(
            Code::ManifestInvalid,
            format!(
                "`{reference}` is neither a digest nor a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})"
            ),
        ))
    }
}

fn manifest_unknown(name: &str, reference: &str) -> ApiError {
    ApiError::new(
        Code::ManifestUnknown,
        format!("manifest `{reference}` is not in repository `{name}`"),
    )
}

pub async fn get(state: &AppState, name: &str, reference: &str, req: Req) -> ApiResult {
    let record = match parse_reference(reference)? {
        Ref::Tag(tag) => state.meta.manifest(name, Reference::Tag(&tag)).await?,
        Ref::Digest(d) => state.meta.manifest(name, Reference::Digest(&d)).await?,
    }
    .ok_or_else(|| manifest_unknown(name, reference))?;
    let length = record.content.len();
    let body = if req.method == Method::HEAD {
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
    Ok(response)
}

/// Reads the body, refusing more than the manifest size cap without reading it all.
async fn read_capped(req: &mut Req) -> ApiResult<Bytes> {
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
    let parsed = manifest::parse(&body, req.header("content-type"))
        .map_err(|e| ApiError::new(Code::ManifestInvalid, e.to_string()))?;

    let (digest, mut tags) = match reference {
        Ref::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &body);
            if actual != expected {
                return Err(ApiError::new(
                    Code::DigestInvalid,
                    format!("manifest has digest {actual}, not {expected}"),
                ));
            }
            (expected, Vec::new())
        }
        Ref::Tag(tag) => (Digest::of(Algorithm::Sha256, &body), vec![tag]),
    };
    // `PUT .../manifests/<digest>?tag=a&tag=b` (spec 1.1.1) tags in the same request.
    for tag in req.params.all("tag") {
        if !is_valid_tag(tag) {
            return Err(ApiError::new(
                Code::ManifestInvalid,
                format!("`{tag}` is not a valid tag"),
            ));
        }
        tags.push(tag.to_string());
    }

    let settings = state.settings(name);
    for tag in &tags {
        // Refused early here with a clear message; checked again, atomically,
        // in the write below.
        if let Some(pattern) = settings.immutable_pattern(tag)
            && let Some(current) = state.meta.manifest(name, Reference::Tag(tag)).await?
            && current.digest != digest.to_string()
        {
            return Err(immutable(tag, pattern));
        }
    }
    publish_well_known(state, name, &parsed.blobs, &settings.quotas).await?;

    let annotations = parsed
        .annotations
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(ApiError::internal)?;
    state
        .meta
        .put_manifest(
            name,
            NewManifest {
                digest: &digest,
                media_type: &parsed.media_type,
                artifact_type: parsed.artifact_type.as_deref(),
                subject: parsed.subject.as_ref(),
                annotations,
                content: &body,
                blobs: &parsed.blobs,
                manifests: &parsed.manifests,
                tags: &tags,
                quotas: &settings.quotas,
                immutable_tags: &settings.immutable_tags,
            },
        )
        .await?;

    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert("location", hv(format!("/v2/{name}/manifests/{digest}")));
    headers.insert("docker-content-digest", hv(digest.to_string()));
    headers.insert("content-length", hv("0"));
    // One `OCI-Tag` per tag applied, so a client of `?tag=` knows which took.
    for tag in &tags {
        headers.append("oci-tag", hv(tag));
    }
    if let Some(subject) = &parsed.subject {
        headers.insert("oci-subject", hv(subject.to_string()));
    }
    Ok(response)
}

pub async fn delete(state: &AppState, name: &str, reference: &str) -> ApiResult {
    let settings = state.settings(name);
    let deleted = match parse_reference(reference)? {
        Ref::Tag(tag) => match settings.immutable_pattern(&tag) {
            Some(pattern) => return Err(immutable(&tag, pattern)),
            None => state.meta.delete_tag(name, &tag).await?,
        },
        Ref::Digest(d) => {
            state
                .meta
                .delete_manifest(name, &d, &settings.immutable_tags)
                .await?
        }
    };
    if deleted {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(manifest_unknown(name, reference))
    }
}

/// Stores and links the well-known blobs the manifest references without
/// their having been uploaded. Only once everything else the manifest
/// refers to is known to be right, so that a refused manifest leaves no
/// link behind (the metadata store checks it all again, atomically).
async fn publish_well_known(
    state: &AppState,
    name: &str,
    blobs: &[Descriptor],
    quotas: &[crate::settings::Quota],
) -> ApiResult<()> {
    let mut missing = Vec::new();
    for blob in blobs {
        let Some(content) = WELL_KNOWN
            .into_iter()
            .find(|c| Digest::of(blob.digest.algorithm(), c) == blob.digest)
        else {
            continue;
        };
        blob.check_size(content.len() as u64)
            .map_err(MetaError::from)?;
        if state
            .meta
            .repository_blob(name, &blob.digest)
            .await?
            .is_none()
        {
            missing.push((blob, content));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    for blob in blobs
        .iter()
        .filter(|b| !missing.iter().any(|(m, _)| m.digest == b.digest))
    {
        let stored = state
            .meta
            .repository_blob(name, &blob.digest)
            .await?
            .ok_or_else(|| MetaError::BlobUnknown(blob.digest.to_string()))?;
        blob.check_size(stored).map_err(MetaError::from)?;
    }
    for (blob, content) in missing {
        let publication = Publication {
            repo: name,
            digest: &blob.digest,
            size: content.len() as u64,
            verified: true,
            quotas,
            upload: None,
        };
        publish(state.meta.as_ref(), publication, || async {
            state
                .blobs
                .put_verified(&blob.digest, Bytes::from_static(content))
                .await?;
            Ok(content.len() as u64)
        })
        .await?;
    }
    Ok(())
}

fn immutable(tag: &str, pattern: &str) -> ApiError {
    ApiError::from(MetaError::TagImmutable {
        tag: tag.to_string(),
        pattern: pattern.to_string(),
    })
}
