//! Per-repository settings hold whether or not access control is on: a
//! registry with no policy file, configured with `repositories:` in its
//! config file, refuses a push over quota and the move of an immutable tag.

mod common;

use common::{Client, OCI_MANIFEST, Server, assert_error, sha256};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn quotas_and_immutable_tags_on_an_open_registry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "repositories:\n\
         - name: small/*\n  quota_bytes: 4096\n\
         - name: fixed/app\n  immutable_tags: [\"v*\"]\n",
    )
    .unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    assert!(server.log().contains("access control is off"));
    let c = Client::new(&server);

    // 3000 bytes fit in the 4096-byte quota; 2000 more do not.
    c.push_blob("small/a", &[1u8; 3000]).await;
    let big = vec![2u8; 2000];
    let r = c
        .req(
            Method::POST,
            &format!("/v2/small/b/blobs/uploads/?digest={}", sha256(&big)),
        )
        .body(big)
        .send()
        .await
        .unwrap();
    let body = assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("quota exceeded"),
        "{body}"
    );
    // Outside the pattern: no quota.
    c.push_blob("large/a", &[3u8; 10_000]).await;

    // v1 may be pushed once, not moved or deleted; latest may move.
    let (_, first) = c.push_image("fixed/app", "v1", b"first").await;
    let (second, _) = c.push_image("fixed/app", "latest", b"second").await;
    let r = c
        .put_manifest("fixed/app", "v1", OCI_MANIFEST, &second)
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    let r = c
        .req(Method::DELETE, "/v2/fixed/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    let r = c
        .req(Method::GET, "/v2/fixed/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"], first.as_str());
}
