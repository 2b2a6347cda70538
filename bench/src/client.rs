//! The registry operations a client performs, over plain HTTP with reqwest.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Body, Client, Method, Response, StatusCode, header};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// What a container runtime sends when it resolves a tag.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{what}: unexpected status {status}: {body}")]
    Status {
        what: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("{0}: no Location header")]
    NoLocation(&'static str),
    #[error("digest mismatch: expected {expected}, got {got}")]
    Digest { expected: String, got: String },
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone)]
pub struct Registry {
    pub http: Client,
    pub base: String,
}

async fn expect(resp: Response, what: &'static str, ok: &[u16]) -> Result<Response> {
    if ok.contains(&resp.status().as_u16()) {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    Err(Error::Status {
        what,
        status,
        body: body.chars().take(300).collect(),
    })
}

impl Registry {
    pub fn new(base: &str) -> Result<Registry> {
        let http = Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(900))
            .build()?;
        Ok(Registry {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A Location header resolved against the base URL.
    fn location(&self, resp: &Response, what: &'static str) -> Result<String> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::NoLocation(what))?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                self.url(loc)
            },
        )
    }

    fn with_digest(url: &str, digest: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}digest={digest}")
    }

    /// POST /blobs/uploads/ -> the upload session URL.
    pub async fn start_upload(&self, repo: &str) -> Result<String> {
        let resp = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .header(header::CONTENT_LENGTH, "0")
            .send()
            .await?;
        let resp = expect(resp, "start upload", &[202]).await?;
        self.location(&resp, "start upload")
    }

    /// Completes an upload with a PUT carrying `body` (may be empty).
    pub async fn finish_upload(
        &self,
        session: &str,
        digest: &str,
        body: Body,
        len: u64,
    ) -> Result<()> {
        let resp = self
            .http
            .put(Self::with_digest(session, digest))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len.to_string())
            .body(body)
            .send()
            .await?;
        expect(resp, "finish upload", &[201]).await?;
        Ok(())
    }

    /// POST then PUT, the two-request monolithic upload most clients use.
    pub async fn push_blob(&self, repo: &str, digest: &str, data: Bytes) -> Result<()> {
        let session = self.start_upload(repo).await?;
        let len = data.len() as u64;
        self.finish_upload(&session, digest, Body::from(data), len)
            .await
    }

    /// Cross-repository mount of a blob the registry already has in `from`;
    /// a registry that declines (202) gets the blob uploaded instead.
    pub async fn mount_or_push(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
        data: Bytes,
    ) -> Result<()> {
        let resp = self
            .http
            .post(self.url(&format!(
                "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
            )))
            .header(header::CONTENT_LENGTH, "0")
            .send()
            .await?;
        let resp = expect(resp, "mount", &[201, 202]).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(());
        }
        let session = self.location(&resp, "mount")?;
        let len = data.len() as u64;
        self.finish_upload(&session, digest, Body::from(data), len)
            .await
    }

    /// PATCH one chunk at `offset`; returns the next session URL.
    pub async fn patch_chunk(&self, session: &str, offset: u64, data: Bytes) -> Result<String> {
        let end = offset + data.len() as u64 - 1;
        let resp = self
            .http
            .patch(session)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_RANGE, format!("{offset}-{end}"))
            .header(header::CONTENT_LENGTH, data.len().to_string())
            .body(data)
            .send()
            .await?;
        let resp = expect(resp, "patch chunk", &[202]).await?;
        self.location(&resp, "patch chunk")
    }

    /// PATCH of a whole blob as one streamed body without Content-Range (what
    /// docker push does); returns the next session URL.
    pub async fn patch_stream(&self, session: &str, body: Body, len: u64) -> Result<String> {
        let resp = self
            .http
            .patch(session)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len.to_string())
            .body(body)
            .send()
            .await?;
        let resp = expect(resp, "patch stream", &[202]).await?;
        self.location(&resp, "patch stream")
    }

    /// HEAD of a blob: does the registry already have it?
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let resp = self
            .http
            .head(self.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .await?;
        let resp = expect(resp, "blob HEAD", &[200, 404]).await?;
        Ok(resp.status() == StatusCode::OK)
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, body: Bytes) -> Result<()> {
        let resp = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(header::CONTENT_TYPE, OCI_MANIFEST)
            .body(body)
            .send()
            .await?;
        expect(resp, "manifest PUT", &[201]).await?;
        Ok(())
    }

    /// GET or HEAD of `path` (a manifest by tag, or any URL path); returns the
    /// body length read.
    pub async fn fetch(&self, method: Method, path: &str) -> Result<u64> {
        let resp = self
            .http
            .request(method, self.url(path))
            .header(header::ACCEPT, ACCEPT_MANIFESTS)
            .send()
            .await?;
        let resp = expect(resp, "fetch", &[200]).await?;
        Ok(resp.bytes().await?.len() as u64)
    }

    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Bytes> {
        let resp = self
            .http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(header::ACCEPT, ACCEPT_MANIFESTS)
            .send()
            .await?;
        let resp = expect(resp, "manifest GET", &[200]).await?;
        Ok(resp.bytes().await?)
    }

    /// Streams a URL path to a sink, hashing when `verify` is given; returns the
    /// number of bytes read. `on_chunk` sees every chunk's length.
    pub async fn pull(
        &self,
        path: &str,
        verify: Option<&str>,
        on_chunk: &(dyn Fn(u64) + Sync),
    ) -> Result<u64> {
        let resp = self.http.get(self.url(path)).send().await?;
        let mut resp = expect(resp, "blob GET", &[200]).await?;
        let mut hasher = verify.map(|_| Sha256::new());
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            n += chunk.len() as u64;
            on_chunk(chunk.len() as u64);
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
        }
        if let (Some(expected), Some(h)) = (verify, hasher) {
            let got = format!("sha256:{}", hex::encode(h.finalize()));
            if got != expected {
                return Err(Error::Digest {
                    expected: expected.to_string(),
                    got,
                });
            }
        }
        Ok(n)
    }

    /// A list endpoint (`/v2/_catalog` or `/v2/<repo>/tags/list`); with
    /// `follow`, on through `Link: <...>; rel="next"` like a client listing
    /// everything. Returns (entries, requests).
    pub async fn list(&self, first: &str, key: &str, follow: bool) -> Result<(usize, usize)> {
        let mut next = Some(first.to_string());
        let (mut entries, mut requests) = (0usize, 0usize);
        while let Some(path) = next.take() {
            let resp = self.http.get(self.url(&path)).send().await?;
            let resp = expect(resp, "list", &[200]).await?;
            requests += 1;
            next = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_next_link);
            let body = resp.bytes().await?;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            entries += v.get(key).and_then(|a| a.as_array()).map_or(0, |a| a.len());
            if !follow || requests > 100_000 {
                break;
            }
        }
        Ok((entries, requests))
    }
}

/// `</v2/_catalog?last=x&n=100>; rel="next"` -> `/v2/_catalog?last=x&n=100`
/// (a full URL is reduced to its path and query).
fn parse_next_link(v: &str) -> Option<String> {
    let start = v.find('<')? + 1;
    let end = v[start..].find('>')? + start;
    if !v[end..].contains("next") {
        return None;
    }
    let target = &v[start..end];
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        return rest.find('/').map(|i| rest[i..].to_string());
    }
    Some(target.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_next_link;

    #[test]
    fn next_link_forms() {
        assert_eq!(
            parse_next_link(r#"</v2/_catalog?last=a&n=100>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=a&n=100")
        );
        assert_eq!(
            parse_next_link(r#"<http://h:5000/v2/r/tags/list?n=1&last=b>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?n=1&last=b")
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
    }
}
