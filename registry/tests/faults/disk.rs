//! A full disk, for blobs and for the database: refused clearly, healed without a restart.

use super::*;

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
