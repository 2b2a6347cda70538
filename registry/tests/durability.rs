//! Crash safety: kill -9 at awkward moments loses nothing acknowledged and
//! exposes nothing half-written; idle uploads expire.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Server, sha256};
use reqwest::{Client, StatusCode};

#[tokio::test]
async fn acknowledged_pushes_survive_kill_9() {
    let mut server = Server::start();
    let http = Client::new();
    let layer = vec![9u8; 1 << 20];
    let layer_digest = sha256(&layer);
    let r = http
        .post(server.url(&format!(
            "/v2/crash/app/blobs/uploads/?digest={layer_digest}"
        )))
        .body(layer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    let r = http
        .put(server.url("/v2/crash/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    server.crash_and_restart();

    let r = http
        .get(server.url("/v2/crash/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.bytes().await.unwrap() == manifest,
        "manifest bytes differ after restart"
    );
    let r = http
        .get(server.url(&format!("/v2/crash/app/blobs/{layer_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), layer_digest);
}

/// Starts a PATCH whose body is cut off by the server being killed.
fn half_sent_patch(
    addr: &str,
    location: &str,
    start: usize,
    full_len: usize,
    sent: &[u8],
) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: {start}-{}\r\nContent-Length: {full_len}\r\n\r\n",
        start + full_len - 1
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(sent).unwrap();
    s.flush().unwrap();
    s
}

#[tokio::test]
async fn upload_interrupted_by_kill_9_resumes_from_last_acknowledged_chunk() {
    let mut server = Server::start();
    let http = Client::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let digest = sha256(&data);
    let (first, rest) = data.split_at(1_000_000);

    let r = http
        .post(server.url("/v2/resume/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = http
        .patch(server.url(&location))
        .header("content-range", format!("0-{}", first.len() - 1))
        .body(first.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Half of the second chunk is on the wire when the server dies.
    let mut cut = half_sent_patch(
        &server.addr,
        &location,
        first.len(),
        rest.len(),
        &rest[..rest.len() / 2],
    );
    std::thread::sleep(Duration::from_millis(200));
    server.crash_and_restart();
    let mut sink = Vec::new();
    let _ = cut.read_to_end(&mut sink);

    // Nothing of the unfinished blob is visible; the session kept what was acknowledged.
    let r = http
        .head(server.url(&format!("/v2/resume/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http.get(server.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["range"],
        format!("0-{}", first.len() - 1).as_str()
    );

    let r = http
        .patch(server.url(&location))
        .header(
            "content-range",
            format!("{}-{}", first.len(), data.len() - 1),
        )
        .body(rest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http
        .put(server.url(&format!("{location}?digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = http
        .get(server.url(&format!("/v2/resume/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
}

#[tokio::test]
async fn idle_uploads_expire_with_their_data() {
    let server = Server::start_with(&["--upload-expiry-seconds", "1"]);
    let http = Client::new();
    let r = http
        .post(server.url("/v2/idle/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = http
        .patch(server.url(&location))
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let stores = server.stores();
    let upload_data = || {
        stores
            .objects()
            .into_keys()
            .filter(|k| k.starts_with("uploads/"))
            .collect::<Vec<_>>()
    };
    assert!(!upload_data().is_empty());

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http.get(server.url(&location)).send().await.unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "upload did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !upload_data().is_empty() {
        assert!(Instant::now() < deadline, "expired upload left data behind");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn upload_data_orphaned_by_a_crash_is_swept() {
    let mut server = Server::start_with(&["--upload-expiry-seconds", "1"]);
    let http = Client::new();
    // More than a part of an object store (8 MiB), so that some of it is
    // stored whatever the backend.
    let data = vec![5u8; 24 * 1024 * 1024];
    let digest = sha256(&data);
    // A single-POST upload has no session; kill the server in the middle of it.
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /v2/orphan/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&data[..data.len() / 2]).unwrap();
    let stores = server.stores();
    let upload_data = || {
        stores
            .objects()
            .into_keys()
            .filter(|k| k.starts_with("uploads/"))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while upload_data().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached storage"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.crash_and_restart();
    drop(s);

    let deadline = Instant::now() + Duration::from_secs(20);
    while !upload_data().is_empty() {
        assert!(
            Instant::now() < deadline,
            "orphaned upload data was never removed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = http
        .head(server.url(&format!("/v2/orphan/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
