//! Manifests by tag and digest, the errors that change nothing, and every shape.

use super::*;

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let api = Api::start();
    let (manifest, digest) = api.push_image("app", "v1", b"layer").await;

    for reference in ["v1", digest.as_str()] {
        let r = api
            .send(Method::GET, &format!("/v2/app/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), digest);
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let r = api
            .send(Method::HEAD, &format!("/v2/app/manifests/{reference}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), manifest.len().to_string());
    }

    // Push by digest with extra tags in the query (spec 1.1.1).
    let r = api
        .put_manifest(
            "app",
            &format!("{digest}?tag=a&tag=b"),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/app/manifests/{digest}")
    );
    let applied: Vec<_> = r
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(applied, ["a", "b"]);
    let r = api.send(Method::GET, "/v2/app/tags/list").await;
    let tags: Value = r.json().await.unwrap();
    assert_eq!(tags, json!({"name": "app", "tags": ["a", "b", "v1"]}));

    // Whitespace changes the digest: the exact bytes are what is stored.
    let mut spaced = manifest.clone();
    spaced.push(b'\n');
    let r = api
        .put_manifest("app", "spaced", OCI_MANIFEST, &spaced)
        .await;
    assert_eq!(header(&r, "docker-content-digest"), sha256(&spaced));

    // A tag pulled (so cached by the server), then moved or deleted, is
    // served as it is now.
    let (_, moved) = api.push_image("app", "v1", b"another layer").await;
    assert_ne!(moved, digest);
    let r = api.send(Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(header(&r, "docker-content-digest"), moved);
    let r = api.send(Method::DELETE, "/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = api.send(Method::GET, "/v2/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = api
        .send(Method::GET, &format!("/v2/app/manifests/{digest}"))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the old manifest stays by digest"
    );
}

#[tokio::test]
async fn manifest_errors_change_nothing() {
    let api = Api::start();
    let (manifest, digest) = api.push_image("m", "v1", b"layer").await;
    let before: Value = api
        .send(Method::GET, "/v2/m/tags/list")
        .await
        .json()
        .await
        .unwrap();

    let r = api
        .put_manifest("m", "v2", OCI_MANIFEST, b"{not json")
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    let r = api.put_manifest("m", "v2", OCI_INDEX, &manifest).await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    let missing = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"nope"), "size": 4},
        "layers": []
    });
    let r = api
        .put_manifest(
            "m",
            "v2",
            OCI_MANIFEST,
            &serde_json::to_vec(&missing).unwrap(),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;

    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"no such manifest"), "size": 10}]
    });
    let r = api
        .put_manifest("m", "v2", OCI_INDEX, &serde_json::to_vec(&index).unwrap())
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;

    let wrong = sha256(b"other");
    let r = api.put_manifest("m", &wrong, OCI_MANIFEST, &manifest).await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;

    let r = api
        .put_manifest("m", ".bad-tag", OCI_MANIFEST, &manifest)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    // Over the cap: refused from Content-Length alone, before the body is read.
    let reply = raw_request(
        &api.server.addr,
        &format!(
            "PUT /v2/m/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 4194305\r\n\r\n"
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("SIZE_INVALID"), "{reply}");
    // Over the cap without Content-Length (chunked): refused once the cap is
    // passed, over a raw socket so that the answer is read whatever the
    // server does with the rest of the body.
    let reply = chunked_request(
        &api.server.addr,
        &format!(
            "PUT /v2/m/manifests/v2 HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ),
        4 * 1024 * 1024 + 1,
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("SIZE_INVALID"), "{reply}");

    let schema1 = br#"{"schemaVersion":1,"name":"m","tag":"v2","fsLayers":[]}"#;
    let r = api
        .put_manifest(
            "m",
            "v2",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;

    let after: Value = api
        .send(Method::GET, "/v2/m/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);
    let r = api
        .send(Method::GET, &format!("/v2/m/manifests/{digest}"))
        .await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
}

#[tokio::test]
async fn index_docker_and_sif_shapes() {
    let api = Api::start();
    let (amd, amd_digest) = api.push_image("multi", "amd64", b"amd64 layer").await;
    let (arm, arm_digest) = api.push_image("multi", "arm64", b"arm64 layer").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_digest, "size": amd.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}}
        ]
    }))
    .unwrap();
    let r = api.put_manifest("multi", "latest", OCI_INDEX, &index).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = api.send(Method::GET, "/v2/multi/manifests/latest").await;
    assert_eq!(header(&r, "content-type"), OCI_INDEX);

    // Docker schema2 carrying a SIF config (a historical SIF shape).
    let config = api.push_blob("sif", br#"{"x":1}"#).await;
    let sif = api.push_blob("sif", b"SIF_MAGIC....").await;
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.sylabs.sif.config.v1+json", "digest": config, "size": 7},
        "layers": [{"mediaType": "application/vnd.sylabs.sif.layer.v1.sif", "digest": sif, "size": 13}]
    }))
    .unwrap();
    let r = api
        .put_manifest("sif", "docker", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);

    // OCI with a zero-byte config that was never uploaded.
    let zero = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.sylabs.sif.config.v1+json", "digest": sha256(b""), "size": 0},
        "layers": [{"mediaType": "application/vnd.sylabs.sif.layer.v1.sif", "digest": sif, "size": 13}]
    }))
    .unwrap();
    let r = api.put_manifest("sif", "zero", OCI_MANIFEST, &zero).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = api
        .send(Method::GET, &format!("/v2/sif/blobs/{}", sha256(b"")))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
}
