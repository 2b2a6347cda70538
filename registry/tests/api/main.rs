//! The distribution spec endpoint by endpoint, over raw HTTP against the real
//! server: status codes, headers, bodies, and every error code Berth returns.

#[path = "../common/mod.rs"]
mod common;

use common::{Server, raw_request, sha256};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

struct Api {
    server: Server,
    http: Client,
}

impl Api {
    fn start() -> Api {
        Api {
            server: Server::start(),
            http: Client::new(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.server.url(path))
    }

    async fn send(&self, method: Method, path: &str) -> Response {
        self.req(method, path).send().await.unwrap()
    }

    /// Single-POST monolithic upload.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        digest
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Pushes config + one layer and an image manifest; returns (manifest bytes, digest).
    async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (Vec<u8>, String) {
        let config = self.push_blob(repo, b"{\"os\":\"linux\"}").await;
        let layer_digest = self.push_blob(repo, layer).await;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 14},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
        }))
        .unwrap();
        let r = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Asserts status and OCI error code of an error response.
async fn assert_error(r: Response, status: StatusCode, code: &str) {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(!body["errors"][0]["message"].as_str().unwrap().is_empty());
}

/// Sends `head`, then `len` bytes of body in 64 KiB chunks (write errors
/// ignored: the server may stop reading), and returns the reply.
fn chunked_request(addr: &str, head: &str, len: usize) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 65536];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        if s.write_all(format!("{n:x}\r\n").as_bytes()).is_err()
            || s.write_all(&chunk[..n]).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
        left -= n;
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

mod base;
mod blobs;
mod deletes;
mod listings;
mod manifests;
mod uploads;
