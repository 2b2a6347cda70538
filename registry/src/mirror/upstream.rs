//! One upstream registry's API, as the mirror uses it: manifests by tag or
//! digest (HEAD to revalidate, GET to fetch, verified against the digest),
//! and blobs as streams. Failures come sorted by what the mirror does with
//! them: serve stale content ([`UpstreamError::Unavailable`]), say it does
//! not exist ([`UpstreamError::NotFound`]), or refuse.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use reqwest::{Method, Response, StatusCode};

use crate::metrics;
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST,
};
use crate::remote::{Remote, RemoteError, error_message};

/// What a manifest request accepts: every kind Berth stores.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// 404: the upstream does not have it.
    #[error("not found upstream")]
    NotFound,
    /// 429, 5xx, a timeout, a refused or broken connection: it may work
    /// later, and cached content may be served meanwhile.
    #[error("{0}")]
    Unavailable(String),
    /// 401/403 (credentials), or another answer the mirror cannot use.
    #[error("{0}")]
    Refused(String),
    /// What came back is not what was asked for.
    #[error("{0}")]
    Invalid(String),
}

/// A manifest as the upstream serves it.
#[derive(Debug)]
pub struct UpstreamManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Bytes,
}

pub struct Upstream {
    /// The mirror's name, for metrics and messages.
    name: String,
    remote: Remote,
}

fn transport(e: RemoteError) -> UpstreamError {
    match e {
        RemoteError::Transport(e) => UpstreamError::Unavailable(crate::report::chain(&e)),
        RemoteError::Token { status, .. } if status.is_server_error() => {
            UpstreamError::Unavailable(e.to_string())
        }
        other => UpstreamError::Refused(other.to_string()),
    }
}

impl Upstream {
    pub fn new(name: String, remote: Remote) -> Self {
        Self { name, remote }
    }

    pub fn url(&self) -> &str {
        self.remote.base()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        repo: &str,
    ) -> Result<Response, UpstreamError> {
        let scope = format!("repository:{repo}:pull");
        let sent = self
            .remote
            .send(method.clone(), path, accept, Some(&scope))
            .await;
        let status = match &sent {
            Ok(r) => r.status().as_str().to_string(),
            Err(_) => "error".to_string(),
        };
        metrics::MIRROR_UPSTREAM_REQUESTS
            .with_label_values(&[self.name.as_str(), method.as_str(), status.as_str()])
            .inc();
        let response = sent.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let what = format!("{} {}{path}", method, self.remote.base());
        Err(match status {
            StatusCode::NOT_FOUND => UpstreamError::NotFound,
            StatusCode::TOO_MANY_REQUESTS => {
                UpstreamError::Unavailable(format!("{what}: 429 Too Many Requests (rate limited)"))
            }
            s if s.is_server_error() => UpstreamError::Unavailable(format!(
                "{what}: {s}: {}",
                error_message(response).await
            )),
            s => UpstreamError::Refused(format!("{what}: {s}: {}", error_message(response).await)),
        })
    }

    /// The digest the upstream has for `repo:reference` (a HEAD).
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Digest, UpstreamError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(Method::HEAD, &path, Some(MANIFEST_ACCEPT), repo)
            .await?;
        response
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| {
                UpstreamError::Invalid(format!(
                    "{}{path}: the answer names no Docker-Content-Digest",
                    self.remote.base()
                ))
            })
    }

    /// Manifest `repo:reference`, checked against the digest asked for (by
    /// digest) or the one the upstream names (by tag).
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<UpstreamManifest, UpstreamError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(Method::GET, &path, Some(MANIFEST_ACCEPT), repo)
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let media_type = header("content-type")
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_string())
            .filter(|t| {
                [
                    OCI_MANIFEST,
                    OCI_INDEX,
                    DOCKER_MANIFEST,
                    DOCKER_MANIFEST_LIST,
                ]
                .contains(&t.as_str())
            })
            .unwrap_or_default();
        let named: Option<Digest> = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => header("docker-content-digest").and_then(|d| d.parse().ok()),
        };
        let mut content = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| UpstreamError::Unavailable(crate::report::chain(&e)))?;
            if content.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(UpstreamError::Invalid(format!(
                    "{}{path}: manifest larger than {MAX_MANIFEST_BYTES} bytes",
                    self.remote.base()
                )));
            }
            content.extend_from_slice(&chunk);
        }
        metrics::MIRROR_UPSTREAM_BYTES
            .with_label_values(&[self.name.as_str()])
            .inc_by(content.len() as u64);
        let digest = match named {
            Some(named) => {
                let actual = Digest::of(named.algorithm(), &content);
                if actual != named {
                    return Err(UpstreamError::Invalid(format!(
                        "{}{path}: content has digest {actual}, not {named}",
                        self.remote.base()
                    )));
                }
                named
            }
            None => Digest::of(Algorithm::Sha256, &content),
        };
        Ok(UpstreamManifest {
            digest,
            media_type,
            content: content.into(),
        })
    }

    /// The size of blob `digest` of `repo` (a HEAD).
    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<u64, UpstreamError> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = self.send(Method::HEAD, &path, None, repo).await?;
        response.content_length().ok_or_else(|| {
            UpstreamError::Invalid(format!("{}{path}: no Content-Length", self.remote.base()))
        })
    }

    /// Blob `digest` of `repo`: its size and its bytes as they come (the
    /// caller checks the digest).
    pub async fn blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<(u64, BoxStream<'static, std::io::Result<Bytes>>), UpstreamError> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = self.send(Method::GET, &path, None, repo).await?;
        let size = response.content_length().ok_or_else(|| {
            UpstreamError::Invalid(format!("{}{path}: no Content-Length", self.remote.base()))
        })?;
        let counter = metrics::MIRROR_UPSTREAM_BYTES.with_label_values(&[self.name.as_str()]);
        let stream = response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .inspect_ok(move |chunk| counter.inc_by(chunk.len() as u64))
            .boxed();
        Ok((size, stream))
    }
}
