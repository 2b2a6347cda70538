//! Retention rules, from flags and from the policy file.

use super::*;

#[tokio::test]
async fn retention_on_a_repository_with_hundreds_of_tags() {
    let server = Server::start();
    let reg = Reg::new(&server);
    let dir = server.stores();

    // 300 builds, 5 releases and `latest`, pushed in order (distinct manifests).
    let mut order = Vec::new();
    for i in 0..300 {
        let tag = if i % 60 == 0 {
            format!("release-{}", i / 60)
        } else {
            format!("build-{i:03}")
        };
        reg.push_image("ci/app", &tag, &[format!("build {i}").as_bytes()], None)
            .await
            .unwrap();
        order.push(tag);
        // Push times are kept in milliseconds: keep them distinct.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    reg.push_image("ci/app", "latest", &[b"build 299"], None)
        .await
        .unwrap();
    let tags_before = list_tags(&reg, "ci/app").await;
    assert_eq!(tags_before.len(), 301);
    // Pulled before retention runs: the server's manifest cache holds them.
    let doomed = reg
        .req(Method::GET, "/v2/ci/app/manifests/build-001")
        .send()
        .await
        .unwrap();
    assert_eq!(doomed.status(), StatusCode::OK);
    let doomed_digest = doomed.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    for _ in 0..2 {
        for path in [
            "/v2/ci/app/manifests/build-001".to_string(),
            format!("/v2/ci/app/manifests/{doomed_digest}"),
            "/v2/ci/app/manifests/build-299".to_string(),
        ] {
            assert_eq!(reg.status(Method::GET, &path).await, StatusCode::OK);
        }
    }

    let args = [
        "retention",
        "--repository",
        "ci/*",
        "--keep-last",
        "20",
        "--only-tags",
        "build-*",
        "--only-tags",
        "release-*",
        "--protect-tags",
        "release-*",
        "--delete-untagged",
        "--grace-seconds",
        "0",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = berth(&dir, &dry);
    assert!(
        out.contains("would delete: 275 tags, 275 untagged manifests in 1 repositories"),
        "{out}"
    );
    assert_eq!(list_tags(&reg, "ci/app").await, tags_before);

    let out = berth(&dir, &args);
    assert!(
        out.contains("deleted: 275 tags, 275 untagged manifests"),
        "{out}"
    );
    // Kept: the 20 newest builds, every release, latest (not a candidate).
    let builds: Vec<&String> = order.iter().filter(|t| t.starts_with("build-")).collect();
    let mut expected: BTreeSet<String> = builds[builds.len() - 20..]
        .iter()
        .map(|t| t.to_string())
        .collect();
    expected.extend(order.iter().filter(|t| t.starts_with("release-")).cloned());
    expected.insert("latest".into());
    let after: BTreeSet<String> = list_tags(&reg, "ci/app").await.into_iter().collect();
    assert_eq!(after, expected);
    // Another process deleted them: the server must not serve them from its
    // cache (not even for a moment), and still serves what was kept.
    for path in [
        "/v2/ci/app/manifests/build-001".to_string(),
        format!("/v2/ci/app/manifests/{doomed_digest}"),
    ] {
        assert_eq!(
            reg.status(Method::GET, &path).await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        reg.status(Method::GET, "/v2/ci/app/manifests/build-299")
            .await,
        StatusCode::OK
    );
    // Each deleted tag is in the output.
    assert!(out.contains("ci/app:build-001 sha256:"), "{out}");
    assert!(!out.contains("ci/app:build-299 "), "{out}");

    // Then gc frees their blobs: only the kept manifests' blobs remain.
    berth(&dir, &["gc", "--grace-seconds", "0"]);
    let disk = assert_storage_matches_metadata(&dir);
    // One shared config + one layer per kept manifest (latest shares build 299's layer).
    assert_eq!(disk.len(), 1 + 25);
}

#[tokio::test]
async fn retention_rules_from_the_policy_file() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write_policy(
        tmp.path(),
        "repositories:\n  - name: team/*\n    immutable_tags: [\"v*\"]\n    retention:\n      keep_last: 2\n",
    );
    let server = Server::start_with(&["--policy-file", &policy]);
    let reg = Reg::new(&server);
    for tag in ["v1", "a", "b", "c", "d"] {
        reg.push_image("team/svc", tag, &[tag.as_bytes()], None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reg.push_image("other/svc", "a", &[b"a"], None)
        .await
        .unwrap();
    // No --repository, no rule flags: the policy file says what and where.
    let out = berth(&server.stores(), &["retention", "--policy-file", &policy]);
    assert!(out.contains("deleted: 2 tags"), "{out}");
    assert_eq!(list_tags(&reg, "team/svc").await, ["c", "d", "v1"]);
    assert_eq!(list_tags(&reg, "other/svc").await, ["a"]);
}
