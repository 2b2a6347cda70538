//! Blob pulls (HEAD, ranges) and cross-repository mounts.

use super::*;

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
