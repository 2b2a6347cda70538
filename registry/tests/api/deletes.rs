//! Deletes, and bad names, methods and paths.

use super::*;

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
