//! The distribution spec endpoint by endpoint, over raw HTTP against the real
//! server: status codes, headers, bodies, and every error code Berth returns.

mod common;

use common::Server;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

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

#[tokio::test]
async fn base_endpoint_and_health() {
    let api = Api::start();
    let r = api.send(Method::GET, "/v2/").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(
        api.send(Method::GET, "/healthz").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.send(Method::GET, "/readyz").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn blob_pull_head_and_ranges() {
    let api = Api::start();
    let data = b"0123456789";
    let digest = api.push_blob("r/blobs", data).await;

    let r = api
        .send(Method::HEAD, &format!("/v2/r/blobs/blobs/{digest}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length"), "10");
    assert_eq!(header(&r, "docker-content-digest"), digest);

    let r = api
        .send(Method::GET, &format!("/v2/r/blobs/blobs/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);

    for (range, want, content_range) in [
        ("bytes=2-5", &b"2345"[..], "bytes 2-5/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-2", b"89", "bytes 8-9/10"),
    ] {
        let r = api
            .req(Method::GET, &format!("/v2/r/blobs/blobs/{digest}"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&r, "content-range"), content_range);
        assert_eq!(r.bytes().await.unwrap().as_ref(), want);
    }
    for unsatisfiable in ["bytes=10-", "bytes=5-2"] {
        let r = api
            .req(Method::GET, &format!("/v2/r/blobs/blobs/{digest}"))
            .header("range", unsatisfiable)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{unsatisfiable}"
        );
        assert_eq!(header(&r, "content-range"), "bytes */10");
    }

    // Blobs are per repository: another repository does not serve it.
    let r = api
        .send(Method::GET, &format!("/v2/other/blobs/{digest}"))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn post_then_put_monolithic_and_sha512() {
    let api = Api::start();
    let data = b"monolithic body";
    let r = api.send(Method::POST, "/v2/mono/blobs/uploads/").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location");
    assert!(location.starts_with("/v2/mono/blobs/uploads/"));
    let digest = sha512(data);
    let r = api
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/mono/blobs/{digest}"));
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let r = api
        .send(Method::GET, &format!("/v2/mono/blobs/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);
    // The session is gone once the blob is committed.
    let r = api.send(Method::GET, &location).await;
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn chunked_upload_with_out_of_order_chunk_and_status() {
    let api = Api::start();
    let data = b"aaaaabbbbbccc";
    let r = api.send(Method::POST, "/v2/chunked/blobs/uploads/").await;
    let location = header(&r, "location");
    assert_eq!(header(&r, "range"), "0-0");

    let patch = |range: &'static str, body: &'static [u8]| {
        api.req(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(body)
            .send()
    };
    let r = patch("0-4", &data[..5]).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-4");
    let location2 = header(&r, "location");

    // Out of order: starts past the end of what was received.
    let r = patch("7-9", &data[7..10]).await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "range"), "0-4");
    // Repeating the first chunk is out of order too.
    let r = patch("0-4", &data[..5]).await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let r = patch("5-9", &data[5..10]).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-9");

    let r = api.send(Method::GET, &location2).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-9");
    assert_eq!(
        header(&r, "docker-upload-uuid"),
        location.rsplit('/').next().unwrap()
    );

    // The last chunk in the body of the closing PUT.
    let digest = sha256(data);
    let r = api
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "10-12")
        .body(&data[10..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = api
        .send(Method::GET, &format!("/v2/chunked/blobs/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);
}

#[tokio::test]
async fn streamed_patch_then_put_and_cancel() {
    let api = Api::start();
    let data = vec![42u8; 300_000];
    let r = api.send(Method::POST, "/v2/streamed/blobs/uploads/").await;
    let location = header(&r, "location");
    let r = api
        .req(Method::PATCH, &location)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-299999");
    let digest = sha256(&data);
    let r = api
        .send(Method::PUT, &format!("{location}?digest={digest}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/streamed/blobs/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );

    // Cancel.
    let r = api.send(Method::POST, "/v2/streamed/blobs/uploads/").await;
    let location = header(&r, "location");
    api.req(Method::PATCH, &location)
        .body("partial")
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.send(Method::DELETE, &location).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = api.send(Method::GET, &location).await;
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let r = api
        .req(Method::PATCH, &location)
        .body("more")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn digest_mismatch_leaves_nothing() {
    let api = Api::start();
    let claimed = sha256(b"what the client claims");
    let r = api
        .req(
            Method::POST,
            &format!("/v2/bad/blobs/uploads/?digest={claimed}"),
        )
        .body("something else")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/bad/blobs/{claimed}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = api.send(Method::POST, "/v2/bad/blobs/uploads/").await;
    let location = header(&r, "location");
    api.req(Method::PATCH, &location)
        .body("chunk")
        .send()
        .await
        .unwrap();
    let r = api
        .send(Method::PUT, &format!("{location}?digest={claimed}"))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/bad/blobs/{claimed}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = api
        .send(Method::PUT, &format!("{location}?digest=sha256:nothex"))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let r = api
        .send(Method::PUT, "/v2/bad/blobs/uploads/nope?digest=sha256:00")
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    // Nothing stored anywhere: no blob files and no upload leftovers.
    let mut files = Vec::new();
    walk(&api.server.data_dir.join("storage"), &mut files);
    assert!(files.is_empty(), "left behind: {files:?}");
}

/// Sends `request` as is and returns what comes back before the server closes
/// or stops sending.
fn raw_request(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            walk(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[tokio::test]
async fn cross_repository_mount() {
    let api = Api::start();
    let digest = api.push_blob("mount/src", b"shared layer").await;

    let r = api
        .send(
            Method::POST,
            &format!("/v2/mount/dst/blobs/uploads/?mount={digest}&from=mount/src"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/mount/dst/blobs/{digest}")
    );
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/mount/dst/blobs/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );

    // Source does not have it: a new upload session instead.
    let missing = sha256(b"not pushed");
    let r = api
        .send(
            Method::POST,
            &format!("/v2/mount/dst/blobs/uploads/?mount={missing}&from=mount/src"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(header(&r, "location").starts_with("/v2/mount/dst/blobs/uploads/"));

    // Automatic mount without `from`.
    let r = api
        .send(
            Method::POST,
            &format!("/v2/mount/auto/blobs/uploads/?mount={digest}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let r = api
        .send(
            Method::POST,
            &format!("/v2/mount/x/blobs/uploads/?mount={digest}&from=Bad..Name"),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let api = Api::start();
    let (manifest, digest) = api.push_image("app", "v1", b"layer").await;

    for reference in ["v1", digest.as_str()] {
        let r = api
            .send(Method::GET, &format!("/v2/app/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), digest);
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let r = api
            .send(Method::HEAD, &format!("/v2/app/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), manifest.len().to_string());
    }

    // Push by digest with extra tags in the query (spec 1.1.1).
    let r = api
        .put_manifest(
            "app",
            &format!("{digest}?tag=a&tag=b"),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/app/manifests/{digest}")
    );
    let applied: Vec<_> = r
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(applied, ["a", "b"]);
    let r = api.send(Method::GET, "/v2/app/tags/list").await;
    let tags: Value = r.json().await.unwrap();
    assert_eq!(tags, json!({"name": "app", "tags": ["a", "b", "v1"]}));

    // Whitespace changes the digest: the exact bytes are what is stored.
    let mut spaced = manifest.clone();
    spaced.push(b'\n');
    let r = api
        .put_manifest("app", "spaced", OCI_MANIFEST, &spaced)
        .await;
    assert_eq!(header(&r, "docker-content-digest"), sha256(&spaced));

    // A tag pulled (so cached by the server), then moved or deleted, is
    // served as it is now.
    let (_, moved) = api.push_image("app", "v1", b"another layer").await;
    assert_ne!(moved, digest);
    let r = api.send(Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(header(&r, "docker-content-digest"), moved);
    let r = api.send(Method::DELETE, "/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = api.send(Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api
        .send(Method::GET, &format!("/v2/app/manifests/{digest}"))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the old manifest stays by digest"
    );
}

#[tokio::test]
async fn manifest_errors_change_nothing() {
    let api = Api::start();
    let (manifest, digest) = api.push_image("m", "v1", b"layer").await;
    let before: Value = api
        .send(Method::GET, "/v2/m/tags/list")
        .await
        .json()
        .await
        .unwrap();

    let r = api
        .put_manifest("m", "v2", OCI_MANIFEST, b"{not json")
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    let r = api.put_manifest("m", "v2", OCI_INDEX, &manifest).await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    let missing = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"nope"), "size": 4},
        "layers": []
    });
    let r = api
        .put_manifest(
            "m",
            "v2",
            OCI_MANIFEST,
            &serde_json::to_vec(&missing).unwrap(),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;

    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"no such manifest"), "size": 10}]
    });
    let r = api
        .put_manifest("m", "v2", OCI_INDEX, &serde_json::to_vec(&index).unwrap())
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;

    let wrong = sha256(b"other");
    let r = api.put_manifest("m", &wrong, OCI_MANIFEST, &manifest).await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    let r = api
        .put_manifest("m", ".bad-tag", OCI_MANIFEST, &manifest)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    // Over the cap: refused from Content-Length alone, before the body is read.
    let reply = raw_request(
        &api.server.addr,
        &format!(
            "PUT /v2/m/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 4194305\r\n\r\n"
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("SIZE_INVALID"), "{reply}");
    // Over the cap without Content-Length (chunked): refused once the cap is
    // passed, over a raw socket so that the answer is read whatever the
    // server does with the rest of the body.
    let reply = chunked_request(
        &api.server.addr,
        &format!(
            "PUT /v2/m/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ),
        4 * 1024 * 1024 + 1,
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("SIZE_INVALID"), "{reply}");

    let schema1 = br#"{"schemaVersion":1,"name":"m","tag":"v2","fsLayers":[]}"#;
    let r = api
        .put_manifest(
            "m",
            "v2",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    let after: Value = api
        .send(Method::GET, "/v2/m/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);
    let r = api
        .send(Method::GET, &format!("/v2/m/manifests/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
}

#[tokio::test]
async fn index_docker_and_sif_shapes() {
    let api = Api::start();
    let (amd, amd_digest) = api.push_image("multi", "amd64", b"amd64 layer").await;
    let (arm, arm_digest) = api.push_image("multi", "arm64", b"arm64 layer").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_digest, "size": amd.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}}
        ]
    }))
    .unwrap();
    let r = api.put_manifest("multi", "latest", OCI_INDEX, &index).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = api.send(Method::GET, "/v2/multi/manifests/latest").await;
    assert_eq!(header(&r, "content-type"), OCI_INDEX);

    // Docker schema2 carrying a SIF config (a historical SIF shape).
    let config = api.push_blob("sif", br#"{"x":1}"#).await;
    let sif = api.push_blob("sif", b"SIF_MAGIC....").await;
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.sylabs.sif.config.v1+json", "digest": config, "size": 7},
        "layers": [{"mediaType": "application/vnd.sylabs.sif.layer.v1.sif", "digest": sif, "size": 13}]
    }))
    .unwrap();
    let r = api
        .put_manifest("sif", "docker", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);

    // OCI with a zero-byte config that was never uploaded.
    let zero = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.sylabs.sif.config.v1+json", "digest": sha256(b""), "size": 0},
        "layers": [{"mediaType": "application/vnd.sylabs.sif.layer.v1.sif", "digest": sif, "size": 13}]
    }))
    .unwrap();
    let r = api.put_manifest("sif", "zero", OCI_MANIFEST, &zero).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = api
        .send(Method::GET, &format!("/v2/sif/blobs/{}", sha256(b"")))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn tags_and_catalog_pagination() {
    let api = Api::start();
    let (manifest, _) = api.push_image("pages/a", "t0", b"l").await;
    for tag in ["t3", "t1", "t2", "T9"] {
        let r = api
            .put_manifest("pages/a", tag, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    for repo in ["pages/c", "pages/b"] {
        api.push_image(repo, "x", b"l").await;
    }

    let r = api.send(Method::GET, "/v2/pages/a/tags/list?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/pages/a/tags/list?n=2&last=t0>; rel=\"next\""
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tags"], json!(["T9", "t0"]));
    let r = api
        .send(Method::GET, "/v2/pages/a/tags/list?n=2&last=t0")
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["t1", "t2"])
    );
    let r = api
        .send(Method::GET, "/v2/pages/a/tags/list?n=2&last=t2")
        .await;
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["t3"]));
    let r = api.send(Method::GET, "/v2/pages/a/tags/list?n=0").await;
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
    let r = api.send(Method::GET, "/v2/pages/a/tags/list?n=-1").await;
    assert_error(r, StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID").await;

    let r = api.send(Method::GET, "/v2/_catalog?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?n=2&last=pages%2Fb>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["pages/a", "pages/b"])
    );
    let r = api.send(Method::GET, "/v2/_catalog?n=2&last=pages/b").await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["pages/c"])
    );

    let r = api.send(Method::GET, "/v2/nobody/tags/list").await;
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn referrers_api() {
    let api = Api::start();
    let (subject_bytes, subject) = api.push_image("ref", "v1", b"layer").await;
    let empty = api.push_blob("ref", b"{}").await;

    let mut pushed = Vec::new();
    for (artifact_type, note) in [
        ("application/vnd.example.sbom", "one"),
        ("application/vnd.example.sig", "two"),
    ] {
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len()},
            "annotations": {"note": note}
        }))
        .unwrap();
        let digest = sha256(&m);
        let r = api.put_manifest("ref", &digest, OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), subject);
        pushed.push((digest, m.len()));
    }

    let r = api
        .send(Method::GET, &format!("/v2/ref/referrers/{subject}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    for (entry, (digest, size)) in manifests.iter().zip(&pushed) {
        assert_eq!(entry["digest"], digest.as_str());
        assert_eq!(entry["size"], *size);
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
    }
    assert_eq!(manifests[0]["annotations"]["note"], "one");

    let r = api
        .send(
            Method::GET,
            &format!("/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sig"),
        )
        .await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );

    // No referrers: an empty index, not 404.
    let r = api
        .send(Method::GET, &format!("/v2/ref/referrers/{}", sha256(b"x")))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
    let r = api.send(Method::GET, "/v2/ref/referrers/sha256:zz").await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn deletes() {
    let api = Api::start();
    let (_, digest) = api.push_image("del", "v1", b"layer").await;
    let r = api
        .put_manifest(
            "del",
            "v2",
            OCI_MANIFEST,
            &api.send(Method::GET, "/v2/del/manifests/v1")
                .await
                .bytes()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Deleting a tag leaves the manifest and other tags.
    assert_eq!(
        api.send(Method::DELETE, "/v2/del/manifests/v1")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_error(
        api.send(Method::GET, "/v2/del/manifests/v1").await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_eq!(
        api.send(Method::GET, &format!("/v2/del/manifests/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_error(
        api.send(Method::DELETE, "/v2/del/manifests/v1").await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;

    // Deleting by digest removes the remaining tags too.
    assert_eq!(
        api.send(Method::DELETE, &format!("/v2/del/manifests/{digest}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_error(
        api.send(Method::GET, &format!("/v2/del/manifests/{digest}"))
            .await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let tags: Value = api
        .send(Method::GET, "/v2/del/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!([]));

    let layer = sha256(b"layer");
    assert_eq!(
        api.send(Method::DELETE, &format!("/v2/del/blobs/{layer}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_error(
        api.send(Method::GET, &format!("/v2/del/blobs/{layer}"))
            .await,
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_error(
        api.send(Method::DELETE, &format!("/v2/del/blobs/{layer}"))
            .await,
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn bad_names_methods_and_paths() {
    let api = Api::start();
    let r = api.send(Method::GET, "/v2/UPPER/tags/list").await;
    assert_error(r, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
    // Traversal attempts, sent verbatim (an HTTP client would normalise them away).
    for path in [
        "/v2/a/../b/manifests/x",
        "/v2/a/%2e%2e/b/manifests/x",
        "/v2/a/%2Fb/manifests/x",
    ] {
        let reply = raw_request(
            &api.server.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        assert!(reply.starts_with("HTTP/1.1 400"), "{path}: {reply}");
        assert!(reply.contains("NAME_INVALID"), "{path}: {reply}");
    }
    let r = api.send(Method::GET, "/v2/a/blobs/md5:abc").await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let r = api.send(Method::POST, "/v2/a/manifests/latest").await;
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    let r = api.send(Method::GET, "/v2/a/manifests/latest").await;
    assert_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let r = api
        .send(
            Method::GET,
            "/v2/a/blobs/uploads/00000000-0000-0000-0000-000000000000",
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let r = api.send(Method::POST, "/v2/a/blobs/uploads/").await;
    let location = header(&r, "location");
    // An upload belongs to its repository.
    let other = location.replacen("/v2/a/", "/v2/b/", 1);
    assert_error(
        api.send(Method::GET, &other).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let r = api
        .req(Method::PATCH, &location)
        .header("content-range", "garbage")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID").await;
    let r = api
        .req(Method::PATCH, &location)
        .header("content-range", "0-9")
        .body("short")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "SIZE_INVALID").await;
    let status = api.send(Method::GET, &location).await;
    assert_eq!(
        header(&status, "range"),
        "0-0",
        "rejected chunks change nothing"
    );
}
