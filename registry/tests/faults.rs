//! Faults injected from the outside: a full disk (a size-limited tmpfs, so
//! this file needs root to mount it), kill -9 while clients push, slow and
//! stalled clients, too many connections, and the leftovers of a crash. For
//! each: what the client is told, what is kept, and that the registry heals
//! without a restart.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Client, OCI_MANIFEST, Server, assert_error, files_under, raw_request, sha256};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A tmpfs of `mib` MiB mounted on a fresh directory; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "berth-faults"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: the disk-full tests need root (CI runs as root)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file of zeros until the disk is full; returns its path.
    fn fill(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        // The last partial chunk may have left a few bytes: take them too.
        let mut byte = [0u8; 1];
        while f.write(&byte).map(|n| n == 1).unwrap_or(false) {
            byte[0] = 0;
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Blob storage runs out of space: the push gets 507 saying so, nothing is
/// half-stored, and once space is freed pushes work again, no restart.
#[tokio::test]
async fn a_full_disk_refuses_blobs_clearly_and_heals() {
    let disk = SmallDisk::mount(48);
    let data_dir = disk.path().join("data");
    let server = Server::start_on(data_dir, &[]);
    let c = Client::new(&server);
    c.push_image("full/app", "before", b"pushed while there was room")
        .await;
    let r = c
        .req(Method::POST, "/v2/full/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let filler = disk.fill("filler");

    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let r = c
        .req(
            Method::POST,
            &format!("/v2/full/app/blobs/uploads/?digest={}", sha256(&big)),
        )
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body = assert_error(r, StatusCode::INSUFFICIENT_STORAGE, "UNAVAILABLE").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("storage is full"), "{message}");
    // A chunked upload stays at its last acknowledged byte.
    let r = c
        .req(Method::PATCH, &location)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let r = c.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-0");
    let r = c
        .req(
            Method::HEAD,
            &format!("/v2/full/app/blobs/{}", sha256(&big)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let metrics = server.metrics();
    assert!(
        metric(&metrics, "berth_storage_full_total{store=\"blobs\"}") >= 2.0,
        "{metrics}"
    );
    assert!(server.log().contains("storage is full"));

    std::fs::remove_file(filler).unwrap();
    let r = c
        .req(Method::PATCH, &location)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .req(Method::PUT, &format!("{location}?digest={}", sha256(&big)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    c.push_image("full/app", "after", b"pushed after space was freed")
        .await;
    let r = c
        .req(Method::GET, &format!("/v2/full/app/blobs/{}", sha256(&big)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), big.as_slice());
}

/// The metadata database runs out of space: tag writes get 507 saying so,
/// and once space is freed they work again on the same process (a failed
/// commit used to leave the writer connection unusable until a restart).
#[tokio::test]
async fn a_full_disk_refuses_metadata_writes_clearly_and_heals() {
    let disk = SmallDisk::mount(32);
    let data_dir = disk.path().join("data");
    let server = Server::start_on(data_dir, &[]);
    let pid = server.pid();
    let c = Client::new(&server);
    let (manifest, digest) = c.push_image("meta/app", "v0", b"a layer").await;
    let filler = disk.fill("filler");

    // Tag writes until the database needs a page it cannot get.
    let mut refused = None;
    for i in 1..5000 {
        let r = c
            .put_manifest("meta/app", &format!("t{i}"), OCI_MANIFEST, &manifest)
            .await;
        if r.status() != StatusCode::CREATED {
            refused = Some((i, r));
            break;
        }
    }
    let (refused_at, r) = refused.expect("the database never ran out of space");
    let body = assert_error(r, StatusCode::INSUFFICIENT_STORAGE, "UNAVAILABLE").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("metadata storage is full"), "{message}");
    // Still full: refused again, the same clear way (not a stuck transaction).
    let r = c
        .put_manifest("meta/app", "again", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(
        metric(
            &server.metrics(),
            "berth_storage_full_total{store=\"metadata\"}"
        ) >= 2.0
    );

    std::fs::remove_file(filler).unwrap();
    for tag in ["healed", &format!("t{refused_at}")] {
        let r = c
            .put_manifest("meta/app", tag, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
    let r = c
        .req(Method::GET, "/v2/meta/app/manifests/healed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(server.pid(), pid, "healed without a restart");
    assert!(
        !server.log().contains("non-zero transaction depth"),
        "{}",
        server.log()
    );
}

/// Pushes from several clients while the server is killed with SIGKILL:
/// every push that was acknowledged is there afterwards, byte for byte, and
/// gc leaves no staging file or session-less upload data behind.
#[tokio::test]
async fn kill_9_during_concurrent_pushes_loses_nothing_acknowledged() {
    let mut server = Server::start();
    let base = server.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..8 {
        let stop = stop.clone();
        let base = base.clone();
        clients.push(tokio::spawn(async move {
            let c = Client {
                http: reqwest::Client::new(),
                base,
            };
            let mut acknowledged = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let repo = format!("crash/c{client}");
                // Small and large blobs: the one-write path and the streamed one.
                let size = if i % 3 == 0 { 1_500_000 } else { 20_000 + i };
                let layer: Vec<u8> = (0..size).map(|b| ((b + client * 7 + i) % 253) as u8).collect();
                let config = format!(r#"{{"client":{client},"i":{i}}}"#).into_bytes();
                let mut ok = true;
                for blob in [&config, &layer] {
                    let r = c
                        .req(
                            Method::POST,
                            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob)),
                        )
                        .body(blob.clone())
                        .send()
                        .await;
                    ok &= r.is_ok_and(|r| r.status() == StatusCode::CREATED);
                }
                if !ok {
                    continue;
                }
                let manifest = serde_json::to_vec(&json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}]
                }))
                .unwrap();
                let tag = format!("i{i}");
                let r = c
                    .req(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
                    .header("content-type", OCI_MANIFEST)
                    .body(manifest.clone())
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == StatusCode::CREATED) {
                    acknowledged.push((repo, tag, manifest, sha256(&layer)));
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for c in clients {
        acknowledged.extend(c.await.unwrap());
    }
    assert!(acknowledged.len() >= 8, "too few pushes to mean anything");

    server.crash_and_restart();
    let c = Client::new(&server);
    for (repo, tag, manifest, layer) in &acknowledged {
        let r = c
            .req(Method::GET, &format!("/v2/{repo}/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{repo}:{tag} lost");
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let r = c
            .req(Method::GET, &format!("/v2/{repo}/blobs/{layer}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            sha256(&r.bytes().await.unwrap()),
            *layer,
            "{repo}:{tag} layer"
        );
    }
    eprintln!("acknowledged pushes: {}, lost: 0", acknowledged.len());

    // Nothing half-written sits next to the blobs (object_store's staging
    // files used to), and gc reclaims what the crash left elsewhere.
    let storage = server.data_dir.join("storage");
    let stray: Vec<_> = files_under(&storage.join("blobs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains('#'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let out = berth(&server.data_dir, &["gc", "--grace-seconds", "0"]);
    assert!(out.contains("staging files"), "{out}");
    assert!(files_under(&storage.join("staging")).is_empty());
    assert!(files_under(&storage.join("uploads")).is_empty());
}

fn berth(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("BERTH_LOG", "warn")
        .output()
        .expect("run berth");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What a crash leaves outside `blobs/` — a staging file, upload data with no
/// session — is removed by gc once older than the grace period, and
/// reported; younger leftovers and live sessions are kept.
#[tokio::test]
async fn gc_reclaims_crash_leftovers_older_than_the_grace_period() {
    let server = Server::start();
    let c = Client::new(&server);
    c.push_image("left/app", "v1", b"a layer").await;
    let r = c
        .req(Method::POST, "/v2/left/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let live = r.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_string();
    let storage = server.data_dir.join("storage");
    // What a kill -9 mid-write leaves: a staging file of 3 bytes and an
    // upload directory whose session never got written, both two hours old.
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    let staged = storage.join("staging/0123456789abcdef");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, b"abc").unwrap();
    let orphan = storage.join("uploads/9d3c7c5e-0000-4000-8000-000000000000");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("whole-1"), b"half a blob").unwrap();
    for path in [&staged, &orphan.join("whole-1"), &orphan] {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .or_else(|_| std::fs::File::open(path))
            .unwrap();
        f.set_modified(old).unwrap();
    }
    let young = storage.join("staging/fedcba9876543210");
    std::fs::write(&young, b"in flight").unwrap();

    let out = berth(&server.data_dir, &["gc", "--dry-run"]);
    assert!(
        out.contains("would delete")
            && out.contains("1 staging files (3 bytes), 1 abandoned uploads"),
        "{out}"
    );
    assert!(staged.exists() && orphan.exists());
    let out = berth(&server.data_dir, &["gc"]);
    assert!(
        out.contains("1 staging files (3 bytes), 1 abandoned uploads"),
        "{out}"
    );
    assert!(!staged.exists() && !orphan.exists());
    assert!(
        young.exists(),
        "a young staging file belongs to a live write"
    );
    let r = c
        .req(Method::GET, &format!("/v2/left/app/blobs/uploads/{live}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "a live session is kept");
}

/// A connection that sends its request head one byte a second.
fn slowloris(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    s
}

/// Whether the server has closed `s` (EOF or reset) by now.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test]
async fn slowloris_connections_are_cut_off() {
    let server = Server::start_with(&["--header-timeout-seconds", "2"]);
    let mut attackers: Vec<TcpStream> = (0..50).map(|_| slowloris(&server.addr)).collect();
    let head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut open = attackers.len();
    let mut sent = 0;
    while open > 0 && started.elapsed() < Duration::from_secs(10) {
        open = 0;
        for s in &mut attackers {
            let _ = s.write_all(&head[sent % head.len()..sent % head.len() + 1]);
            if !closed_by_server(s) {
                open += 1;
            }
        }
        sent += 1;
        // Served normally meanwhile.
        let reply = raw_request(
            &server.addr,
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        std::thread::sleep(Duration::from_millis(950));
    }
    assert_eq!(
        open,
        0,
        "slow request heads still open after {:?}",
        started.elapsed()
    );
    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    let reply = String::from_utf8_lossy(&all);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_stalled_upload_body_ends_and_the_session_keeps_what_was_acknowledged() {
    let server = Server::start_with(&["--body-timeout-seconds", "2"]);
    let c = Client::new(&server);
    let r = c
        .req(Method::POST, "/v2/stall/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let first = vec![1u8; 100];
    let r = c
        .req(Method::PATCH, &location)
        .header("content-range", "0-99")
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // A PATCH announcing 1 MiB that sends 64 KiB and then nothing.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1048576\r\nContent-Range: 100-1048675\r\n\r\n"
    )
    .unwrap();
    s.write_all(&vec![2u8; 65536]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stalled request was not ended"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("BLOB_UPLOAD_INVALID"), "{reply}");

    let r = c.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(
        r.headers()["range"],
        "0-99",
        "the session kept only what was acknowledged"
    );
    let rest = vec![3u8; 50];
    let r = c
        .req(Method::PATCH, &location)
        .header("content-range", "100-149")
        .body(rest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let whole = [first, rest].concat();
    let r = c
        .req(
            Method::PUT,
            &format!("{location}?digest={}", sha256(&whole)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let server = Server::start_with(&["--send-timeout-seconds", "2"]);
    let c = Client::new(&server);
    let blob: Vec<u8> = (0..64 << 20).map(|i| (i % 241) as u8).collect();
    let digest = c.push_blob("slow/reader", &blob).await;
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "GET /v2/slow/reader/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    s.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    // Read nothing for a while, then everything that is left.
    std::thread::sleep(Duration::from_secs(6));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.len() + first.len() < blob.len(),
        "the whole blob arrived: the stalled client was never cut off"
    );
    // Others are served meanwhile and after.
    let r = c
        .req(Method::GET, &format!("/v2/slow/reader/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), blob.len());
}

#[tokio::test]
async fn connections_over_the_limits_are_refused_with_the_spec_error() {
    let server = Server::start_with(&["--max-connections-per-client", "4"]);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let reply = raw_request(&server.addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    assert!(
        reply.contains("TOOMANYREQUESTS") && reply.contains("retry-after: 1"),
        "{reply}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let reply = raw_request(
        &server.addr,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    let server = Server::start_with(&[
        "--max-connections",
        "3",
        "--max-connections-per-client",
        "0",
    ]);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let reply = raw_request(&server.addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("UNAVAILABLE"), "{reply}");
    drop(held);
}
