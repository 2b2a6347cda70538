//! Quotas and immutable tags, enforced at push time.

use super::*;

#[tokio::test]
async fn quotas_refuse_pushes_past_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write_policy(
        tmp.path(),
        "repositories:\n  - name: q/*\n    quota_bytes: 10000\n  - name: small\n    quota_bytes: 3000\n",
    );
    let server = Server::start_with(&["--policy-file", &policy]);
    let reg = Reg::new(&server);

    let big = layer("big", 6000);
    reg.push_blob("q/a", &big).await.unwrap();
    // The same blob again in the same repository counts once.
    let r = reg.post_blob("q/a", &big).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Another 6000 bytes under q/* passes 10000: DENIED, with the numbers.
    let other = layer("other", 6000);
    let r = reg.post_blob("q/b", &other).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("q/*") && message.contains("10000") && message.contains("6000"),
        "{message}"
    );
    // Nothing of it is served.
    assert_eq!(
        reg.status(Method::HEAD, &format!("/v2/q/b/blobs/{}", sha256(&other)))
            .await,
        StatusCode::NOT_FOUND
    );
    // A chunked upload is refused the same way at its end.
    let r = reg
        .req(Method::POST, "/v2/q/b/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = reg
        .http
        .patch(format!("{}{}", reg.base, location))
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = reg
        .http
        .put(format!(
            "{}{}?digest={}",
            reg.base,
            location,
            sha256(&other)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Mounting the big blob into q/b would count it a second time.
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/q/b/blobs/uploads/?mount={}&from=q/a", sha256(&big)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Small blobs still fit, and manifests count too.
    reg.push_image("q/b", "v1", &[b"tiny layer"], None)
        .await
        .unwrap();
    // A per-repository quota.
    let err = reg
        .push_image("small", "v1", &[&layer("s", 3500)], None)
        .await
        .unwrap_err();
    assert!(
        err.contains("403") && err.contains("DENIED") && err.contains("`small`"),
        "{err}"
    );

    let u = usage(&server.stores(), &["--policy-file", &policy]);
    let q = u["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["pattern"] == "q/*")
        .unwrap();
    assert_eq!(q["limit_bytes"], 10000);
    let used = q["used_bytes"].as_u64().unwrap();
    assert!((6000..10000).contains(&used), "{u}");
    let repos: u64 = u["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("q/"))
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(repos, used);
}

#[tokio::test]
async fn immutable_tags_cannot_move_or_go() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write_policy(
        tmp.path(),
        "repositories:\n  - name: rel/*\n    immutable_tags: [\"v*\"]\n",
    );
    let server = Server::start_with(&["--policy-file", &policy]);
    let reg = Reg::new(&server);

    let one = reg
        .push_image("rel/app", "v1.0", &[b"one"], None)
        .await
        .unwrap();
    // Same digest again: fine.
    reg.put_manifest("rel/app", "v1.0", OCI_MANIFEST, &one.manifest)
        .await
        .unwrap();
    // Another manifest under v1.0: DENIED, and v1.0 still points at one.
    let err = reg
        .push_image("rel/app", "v1.0", &[b"two"], None)
        .await
        .unwrap_err();
    assert!(
        err.contains("403") && err.contains("DENIED") && err.contains("immutable"),
        "{err}"
    );
    reg.pull_verified("rel/app", "v1.0", &one).await;
    // Not deletable by tag, nor by deleting its manifest.
    for reference in ["v1.0", one.digest.as_str()] {
        let r = reg
            .req(
                Method::DELETE,
                &format!("/v2/rel/app/manifests/{reference}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED");
    }
    reg.pull_verified("rel/app", "v1.0", &one).await;
    // Other tags move freely, also through `?tag=` on a digest push.
    reg.push_image("rel/app", "latest", &[b"one"], None)
        .await
        .unwrap();
    reg.push_image("rel/app", "latest", &[b"two"], None)
        .await
        .unwrap();
    let three = reg
        .push_image("rel/app", "tmp", &[b"three"], None)
        .await
        .unwrap();
    let r = reg
        .put_manifest(
            "rel/app",
            &format!("{}?tag=v2&tag=v1.0", three.digest),
            OCI_MANIFEST,
            &three.manifest,
        )
        .await;
    assert_eq!(r.unwrap_err().0, StatusCode::FORBIDDEN);
    reg.pull_verified("rel/app", "v1.0", &one).await;
    // Outside rel/*, v* tags are ordinary.
    reg.push_image("dev/app", "v1.0", &[b"one"], None)
        .await
        .unwrap();
    reg.push_image("dev/app", "v1.0", &[b"two"], None)
        .await
        .unwrap();
}
