//! Uploads: monolithic, chunked, streamed, cancelled; digest mismatches.

use super::*;

#[tokio::test]
async fn post_then_put_monolithic_and_sha512() {
    let api = Api::start();
    let data = b"monolithic body";
    let r = api.send(Method::POST, "/v2/mono/blobs/uploads/").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location");
    assert!(location.starts_with("/v2/mono/blobs/uploads/"));
    let digest = sha512(data);
    let r = api
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "location"), format!("/v2/mono/blobs/{digest}"));
    assert_eq!(header(&r, "docker-content-digest"), digest);
    let r = api
        .send(Method::GET, &format!("/v2/mono/blobs/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);
    // The session is gone once the blob is committed.
    let r = api.send(Method::GET, &location).await;
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn chunked_upload_with_out_of_order_chunk_and_status() {
    let api = Api::start();
    let data = b"aaaaabbbbbccc";
    let r = api.send(Method::POST, "/v2/chunked/blobs/uploads/").await;
    let location = header(&r, "location");
    assert_eq!(header(&r, "range"), "0-0");

    let patch = |range: &'static str, body: &'static [u8]| {
        api.req(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(body)
            .send()
    };
    let r = patch("0-4", &data[..5]).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-4");
    let location2 = header(&r, "location");

    // Out of order: starts past the end of what was received.
    let r = patch("7-9", &data[7..10]).await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "range"), "0-4");
    // Repeating the first chunk is out of order too.
    let r = patch("0-4", &data[..5]).await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    let r = patch("5-9", &data[5..10]).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-9");

    let r = api.send(Method::GET, &location2).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range"), "0-9");
    assert_eq!(
        header(&r, "docker-upload-uuid"),
        location.rsplit('/').next().unwrap()
    );

    // The last chunk in the body of the closing PUT.
    let digest = sha256(data);
    let r = api
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "10-12")
        .body(&data[10..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = api
        .send(Method::GET, &format!("/v2/chunked/blobs/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);
}

#[tokio::test]
async fn streamed_patch_then_put_and_cancel() {
    let api = Api::start();
    let data = vec![42u8; 300_000];
    let r = api.send(Method::POST, "/v2/streamed/blobs/uploads/").await;
    let location = header(&r, "location");
    let r = api
        .req(Method::PATCH, &location)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), "0-299999");
    let digest = sha256(&data);
    let r = api
        .send(Method::PUT, &format!("{location}?digest={digest}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/streamed/blobs/{digest}"))
            .await
            .status(),
        StatusCode::OK
    );

    // Cancel, after more than a part's worth (on S3: a multipart upload).
    let r = api.send(Method::POST, "/v2/streamed/blobs/uploads/").await;
    let location = header(&r, "location");
    for chunk in [vec![1u8; 9 << 20], vec![2u8; 1 << 20]] {
        let r = api
            .req(Method::PATCH, &location)
            .body(chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(
        api.send(Method::DELETE, &location).await.status(),
        StatusCode::NO_CONTENT
    );
    // Nothing of it is left in the store: no parts, no open multipart upload.
    let left: Vec<String> = api
        .server
        .stores()
        .objects()
        .into_keys()
        .filter(|k| !k.starts_with("blobs/"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let r = api.send(Method::GET, &location).await;
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let r = api
        .req(Method::PATCH, &location)
        .body("more")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn digest_mismatch_leaves_nothing() {
    let api = Api::start();
    let claimed = sha256(b"what the client claims");
    let r = api
        .req(
            Method::POST,
            &format!("/v2/bad/blobs/uploads/?digest={claimed}"),
        )
        .body("something else")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/bad/blobs/{claimed}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = api.send(Method::POST, "/v2/bad/blobs/uploads/").await;
    let location = header(&r, "location");
    api.req(Method::PATCH, &location)
        .body("chunk")
        .send()
        .await
        .unwrap();
    let r = api
        .send(Method::PUT, &format!("{location}?digest={claimed}"))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_eq!(
        api.send(Method::HEAD, &format!("/v2/bad/blobs/{claimed}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = api
        .send(Method::PUT, &format!("{location}?digest=sha256:nothex"))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let r = api
        .send(Method::PUT, "/v2/bad/blobs/uploads/nope?digest=sha256:00")
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    // Nothing stored anywhere: no blobs and no upload leftovers.
    let left = api.server.stores().objects();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Two PATCHes of the same chunk to one session at once (a client bug, or a
/// retry while the first is still in flight): one is acknowledged, the
/// other refused with 416 and the session's range, and the blob is the
/// acknowledged bytes — never a mix of both.
#[tokio::test]
async fn concurrent_patches_to_one_session_acknowledge_one() {
    use futures::StreamExt;
    let api = Api::start();
    let r = api.send(Method::POST, "/v2/racing/blobs/uploads/").await;
    let location = header(&r, "location");
    let slow: Vec<u8> = vec![b's'; 6 << 20];
    let fast: Vec<u8> = vec![b'f'; 6 << 20];
    // The slow one sends its body over ~1 s, so the fast one comes while
    // it is in flight.
    let chunks: Vec<Vec<u8>> = slow.chunks(1 << 20).map(<[u8]>::to_vec).collect();
    let body = futures::stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        Ok::<_, std::io::Error>(c)
    });
    let slow_patch = api
        .req(Method::PATCH, &location)
        .header("content-range", format!("0-{}", slow.len() - 1))
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let fast_patch = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        api.req(Method::PATCH, &location)
            .header("content-range", format!("0-{}", fast.len() - 1))
            .body(fast.clone())
            .send()
            .await
    };
    let (slow_r, fast_r) = tokio::join!(slow_patch, fast_patch);
    let (slow_r, fast_r) = (slow_r.unwrap(), fast_r.unwrap());
    let statuses = [slow_r.status(), fast_r.status()];
    assert!(
        statuses.contains(&StatusCode::ACCEPTED)
            && statuses.contains(&StatusCode::RANGE_NOT_SATISFIABLE),
        "{statuses:?}"
    );
    let winner = if slow_r.status() == StatusCode::ACCEPTED {
        &slow
    } else {
        &fast
    };
    let r = api.send(Method::GET, &location).await;
    assert_eq!(header(&r, "range"), format!("0-{}", winner.len() - 1));
    let digest = sha256(winner);
    let r = api
        .send(Method::PUT, &format!("{location}?digest={digest}"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = api
        .send(Method::GET, &format!("/v2/racing/blobs/{digest}"))
        .await;
    assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
}
