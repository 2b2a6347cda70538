//! Misses, hits, TTLs and revalidation, counted at the upstream.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn a_miss_is_fetched_once_then_served_from_the_cache() {
    let up = Upstream::start();
    let (digest, blobs) = up
        .push(
            "team/app",
            "v1",
            &[content(1, 300_000), content(2, 200_000)],
        )
        .await;
    let (berth, _config, _dir) = berth_mirroring(&up.url(), "    tag_ttl_seconds: 2\n");
    let c = Client::new(&berth);

    // A miss, containerd's way: one manifest GET and one GET per blob.
    assert_eq!(pull(&c, "team/app", "v1", true).await, digest);
    assert_eq!(up.requests("GET", "/v2/team/app/manifests/"), 1);
    assert_eq!(up.requests("GET", "/v2/team/app/blobs/"), blobs.len());
    // Hits, both ways of naming it: no upstream request at all.
    assert_eq!(pull(&c, "team/app", "v1", false).await, digest);
    assert_eq!(pull(&c, "team/app", "v1", true).await, digest);
    assert_eq!(up.requests("GET", "/v2/team/app/"), 1 + blobs.len());
    assert_eq!(up.requests("HEAD", "/v2/team/app/"), 0);

    // Past the TTL: one HEAD, the tag has not moved, no GET.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(pull(&c, "team/app", "v1", true).await, digest);
    assert_eq!(up.requests("HEAD", "/v2/team/app/manifests/v1"), 1);
    assert_eq!(up.requests("GET", "/v2/team/app/manifests/"), 1);

    // Moved upstream: past the TTL, HEAD then GET of the new manifest.
    let (moved, _) = up.push("team/app", "v1", &[content(3, 100_000)]).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(pull(&c, "team/app", "v1", true).await, moved);
    assert_eq!(up.requests("HEAD", "/v2/team/app/manifests/v1"), 2);
    assert_eq!(up.requests("GET", "/v2/team/app/manifests/"), 2);
    // The old manifest, by digest: immutable, never asked again.
    let before = up.requests("", "/v2/");
    let r = get(&c, &format!("/v2/{MIRROR}/team/app/manifests/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(up.requests("", "/v2/"), before);

    assert!(
        metric(
            &berth,
            &format!("berth_mirror_pulls_total{{mirror=\"{MIRROR}\",result=\"hit\"}}")
        ) >= 8.0
    );
    assert!(
        metric(
            &berth,
            &format!("berth_mirror_pulls_total{{mirror=\"{MIRROR}\",result=\"revalidated\"}}")
        ) >= 1.0
    );
    assert!(
        metric(
            &berth,
            &format!("berth_mirror_upstream_bytes_total{{mirror=\"{MIRROR}\"}}")
        ) >= 500_000.0
    );
}

#[tokio::test]
async fn what_the_upstream_does_not_have_is_the_spec_404_and_pushes_are_refused() {
    let up = Upstream::start();
    up.push("team/app", "v1", &[content(4, 1000)]).await;
    let (berth, _config, _dir) = berth_mirroring(&up.url(), "");
    let c = Client::new(&berth);
    let r = get(&c, &format!("/v2/{MIRROR}/team/app/manifests/nope")).await;
    common::assert_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let missing = sha256(b"not upstream");
    let r = get(&c, &format!("/v2/{MIRROR}/team/app/blobs/{missing}")).await;
    common::assert_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;

    // The mirror's repositories hold what the upstream serves.
    let r = c
        .put_manifest(
            &format!("{MIRROR}/team/app"),
            "mine",
            OCI_MANIFEST,
            br#"{"schemaVersion":2}"#,
        )
        .await;
    let body = common::assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    assert!(body.to_string().contains("allow_push"), "{body}");
    let r = c
        .req(
            Method::POST,
            &format!("/v2/{MIRROR}/team/app/blobs/uploads/"),
        )
        .send()
        .await
        .unwrap();
    common::assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    // Other repositories are not affected.
    c.push_image("mine/app", "v1", b"a layer").await;
}
