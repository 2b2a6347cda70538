//! kill -9 while clients push, and what a crash leaves behind.

use super::*;

/// Pushes from several clients while the server is killed with SIGKILL:
/// every push that was acknowledged is there afterwards, byte for byte, and
/// gc leaves no staging file or session-less upload data behind.
#[tokio::test]
async fn kill_9_during_concurrent_pushes_loses_nothing_acknowledged() {
    let mut server = Server::start_local(&[]);
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
    let out = server.stores().berth(&["gc", "--grace-seconds", "0"]);
    assert!(out.contains("staging files"), "{out}");
    assert!(files_under(&storage.join("staging")).is_empty());
    assert!(files_under(&storage.join("uploads")).is_empty());
}

/// What a crash leaves outside `blobs/` — a staging file, upload data with no
/// session — is removed by gc once older than the grace period, and
/// reported; younger leftovers and live sessions are kept.
#[tokio::test]
async fn gc_reclaims_crash_leftovers_older_than_the_grace_period() {
    let server = Server::start_local(&[]);
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

    let out = server.stores().berth(&["gc", "--dry-run"]);
    assert!(
        out.contains("would delete")
            && out.contains("1 staging files (3 bytes), 1 abandoned uploads"),
        "{out}"
    );
    assert!(staged.exists() && orphan.exists());
    let out = server.stores().berth(&["gc"]);
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
