//! gc against a serving registry: what nothing reaches goes, with clients pushing meanwhile, and on a schedule.

use super::*;

#[tokio::test]
async fn gc_removes_exactly_what_nothing_reaches() {
    let server = Server::start();
    let reg = Reg::new(&server);
    let dir = server.stores();
    let shared = layer("shared", 3000);
    let (a1, a2, b1, c1, orphan) = (
        layer("a1", 1000),
        layer("a2", 1000),
        layer("b1", 2000),
        layer("c1", 500),
        layer("orphan", 4000),
    );

    // app:v1 = A (kept); app:v2 = B then moved to C (B untagged, goes).
    let a = reg
        .push_image("app", "v1", &[&shared, &a1, &a2], None)
        .await
        .unwrap();
    let b = reg
        .push_image("app", "v2", &[&shared, &b1], None)
        .await
        .unwrap();
    let c = reg.push_image("app", "v2", &[&c1], None).await.unwrap();
    // A referrer of A stays; a referrer of B goes with it.
    let sbom_a = push_by_digest(&reg, "app", &[b"sbom of a"], Some(&a.digest)).await;
    let sbom_b = push_by_digest(&reg, "app", &[b"sbom of b"], Some(&b.digest)).await;
    // An index reaching a child pushed by digest only: both stay.
    let child = push_by_digest(&reg, "app", &[b"arm64 layer"], None).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.manifest.len(),
                       "platform": {"architecture": "arm64", "os": "linux"}}]
    }))
    .unwrap();
    reg.put_manifest("app", "multi", OCI_INDEX, &index)
        .await
        .unwrap();
    // A blob no manifest references, and a repository that only ever had one.
    let orphan_digest = reg.push_blob("app", &orphan).await.unwrap();
    reg.push_blob("scratch/only-blobs", b"lonely blob")
        .await
        .unwrap();

    let before = assert_storage_matches_metadata(&dir);

    // Default grace (1 h): everything is young, nothing goes.
    let out = berth(&dir, &["gc"]);
    assert!(
        out.contains("deleted: 0 untagged manifests, 0 blob links, 0 empty repositories, 0 blobs"),
        "{out}"
    );
    assert_eq!(blobs_on_disk(&dir), before);

    // Dry run with no grace: reports, changes nothing.
    let out = berth(&dir, &["gc", "--grace-seconds", "0", "--dry-run"]);
    assert!(out.contains("would delete: 2 untagged manifests"), "{out}");
    assert_eq!(blobs_on_disk(&dir), before);
    assert_eq!(
        reg.status(Method::HEAD, &format!("/v2/app/manifests/{}", b.digest))
            .await,
        StatusCode::OK
    );

    // The real run, while the server keeps serving.
    let out = berth(&dir, &["gc", "--grace-seconds", "0"]);
    assert!(out.contains("deleted: 2 untagged manifests"), "{out}");
    assert!(out.contains("1 empty repositories"), "{out}");

    for (reference, image) in [
        ("v1", &a),
        ("v2", &c),
        (&sbom_a.digest[..], &sbom_a),
        (&child.digest[..], &child),
    ] {
        reg.pull_verified("app", reference, image).await;
    }
    assert_eq!(
        reg.status(Method::GET, "/v2/app/manifests/multi").await,
        StatusCode::OK
    );
    for gone in [&b.digest, &sbom_b.digest] {
        assert_eq!(
            reg.status(Method::GET, &format!("/v2/app/manifests/{gone}"))
                .await,
            StatusCode::NOT_FOUND
        );
    }
    // Referrers of A still list its SBOM.
    let referrers: Value = reg
        .req(Method::GET, &format!("/v2/app/referrers/{}", a.digest))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], sbom_a.digest.as_str());

    // On disk: exactly the blobs the kept manifests reference.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for image in [&a, &c, &sbom_a, &child] {
        for (d, data) in &image.blobs {
            expected.insert(d.clone(), data.len() as u64);
        }
    }
    let after = assert_storage_matches_metadata(&dir);
    assert_eq!(after, expected);
    assert!(!after.contains_key(&orphan_digest));
    assert!(!after.contains_key(&sha256(&b1)));
    assert!(after.contains_key(&sha256(&shared)));
    let catalog: Value = reg
        .req(Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["repositories"], json!(["app"]));

    // A second gc finds nothing.
    let out = berth(&dir, &["gc", "--grace-seconds", "0"]);
    assert!(
        out.contains("deleted: 0 untagged manifests, 0 blob links, 0 empty repositories, 0 blobs"),
        "{out}"
    );
}

/// Pushes, pulls and tag deletions run while `berth gc` runs in a loop (as
/// separate processes, with a 1 s grace period). Every push that was
/// acknowledged must pull completely afterwards; refused pushes must have
/// been refused with a clear error; and after a final gc the store holds
/// exactly the blobs the remaining tags reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_in_a_loop_while_clients_push_and_pull() {
    let server = Server::start();
    let reg = Reg::new(&server);
    let dir = server.stores();
    let stop = Arc::new(AtomicBool::new(false));

    let gc_loop = {
        let dir = dir.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) || runs < 3 {
                berth(&dir, &["gc", "--grace-seconds", "1"]);
                runs += 1;
            }
            runs
        })
    };

    let mut workers = Vec::new();
    for w in 0..4 {
        let reg = reg.clone();
        workers.push(tokio::spawn(async move {
            let repo = format!("load/w{}", w % 2);
            // tag -> image, for tags this worker still holds.
            let mut live: BTreeMap<String, Image> = BTreeMap::new();
            let mut refused = 0;
            for i in 0..40 {
                let shared = layer(&format!("shared-{}", i % 3), 2048);
                let unique = layer(&format!("w{w}-i{i}"), 1024 + i);
                let tag = format!("w{w}-{i}");
                match reg.push_image(&repo, &tag, &[&shared, &unique], None).await {
                    Ok(image) => {
                        live.insert(tag, image);
                    }
                    Err(e) => {
                        // Only the errors a racing gc may cause, never a 500.
                        assert!(
                            e.contains("MANIFEST_BLOB_UNKNOWN") || e.contains("503"),
                            "push refused with an unexpected error: {e}"
                        );
                        refused += 1;
                    }
                }
                // Untag every third image so its blobs become garbage.
                if i % 3 == 2
                    && let Some(old) = live.keys().next().cloned()
                {
                    assert_eq!(
                        reg.status(Method::DELETE, &format!("/v2/{repo}/manifests/{old}"))
                            .await,
                        StatusCode::ACCEPTED
                    );
                    live.remove(&old);
                }
                // Pull something still tagged.
                if let Some((tag, image)) = live.iter().next() {
                    reg.pull_verified(&repo, tag, image).await;
                }
            }
            (repo, live, refused)
        }));
    }
    let mut live_all = Vec::new();
    let mut refused = 0;
    for w in workers {
        let (repo, live, r) = w.await.unwrap();
        refused += r;
        live_all.push((repo, live));
    }
    stop.store(true, Ordering::Relaxed);
    let runs = gc_loop.await.unwrap();
    assert!(runs >= 3);
    eprintln!("gc ran {runs} times; {refused} pushes refused during races");

    // Every acknowledged, still-tagged push pulls completely.
    let mut expected = BTreeMap::new();
    for (repo, live) in &live_all {
        assert!(!live.is_empty());
        for (tag, image) in live {
            reg.pull_verified(repo, tag, image).await;
            for (d, data) in &image.blobs {
                expected.insert(d.clone(), data.len() as u64);
            }
        }
    }
    // Past the grace period, a final gc leaves exactly what the tags reference.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    berth(&dir, &["gc", "--grace-seconds", "1"]);
    assert_eq!(assert_storage_matches_metadata(&dir), expected);
}

#[tokio::test]
async fn gc_runs_inside_the_server_on_a_schedule() {
    let server = Server::start_with(&["--gc-interval-seconds", "1", "--gc-grace-seconds", "0"]);
    let reg = Reg::new(&server);
    let image = reg
        .push_image("sched/app", "v1", &[b"to be collected"], None)
        .await
        .unwrap();
    assert_eq!(
        reg.status(
            Method::DELETE,
            &format!("/v2/sched/app/manifests/{}", image.digest)
        )
        .await,
        StatusCode::ACCEPTED
    );
    let layer = &image.blobs[1].0;
    let deadline = Instant::now() + Duration::from_secs(20);
    // The bytes go, and the run is logged (just after).
    while blobs_on_disk(&server.stores()).contains_key(layer)
        || !server.log().contains("gc finished")
    {
        assert!(
            Instant::now() < deadline,
            "scheduled gc did not remove {layer}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
