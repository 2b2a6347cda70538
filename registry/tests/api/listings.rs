//! Tags, the catalog and the referrers API.

use super::*;

#[tokio::test]
async fn tags_and_catalog_pagination() {
    let api = Api::start();
    let (manifest, _) = api.push_image("pages/a", "t0", b"l").await;
    for tag in ["t3", "t1", "t2", "T9"] {
        let r = api
            .put_manifest("pages/a", tag, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    for repo in ["pages/c", "pages/b"] {
        api.push_image(repo, "x", b"l").await;
    }

    let r = api.send(Method::GET, "/v2/pages/a/tags/list?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/pages/a/tags/list?n=2&last=t0>; rel=\"next\""
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tags"], json!(["T9", "t0"]));
    let r = api
        .send(Method::GET, "/v2/pages/a/tags/list?n=2&last=t0")
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["t1", "t2"])
    );
    let r = api
        .send(Method::GET, "/v2/pages/a/tags/list?n=2&last=t2")
        .await;
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["t3"]));
    let r = api.send(Method::GET, "/v2/pages/a/tags/list?n=0").await;
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
    let r = api.send(Method::GET, "/v2/pages/a/tags/list?n=-1").await;
    assert_error(r, StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID").await;

    let r = api.send(Method::GET, "/v2/_catalog?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?n=2&last=pages%2Fb>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["pages/a", "pages/b"])
    );
    let r = api.send(Method::GET, "/v2/_catalog?n=2&last=pages/b").await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["pages/c"])
    );

    let r = api.send(Method::GET, "/v2/nobody/tags/list").await;
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn referrers_api() {
    let api = Api::start();
    let (subject_bytes, subject) = api.push_image("ref", "v1", b"layer").await;
    let empty = api.push_blob("ref", b"{}").await;

    let mut pushed = Vec::new();
    for (artifact_type, note) in [
        ("application/vnd.example.sbom", "one"),
        ("application/vnd.example.sig", "two"),
    ] {
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_bytes.len()},
            "annotations": {"note": note}
        }))
        .unwrap();
        let digest = sha256(&m);
        let r = api.put_manifest("ref", &digest, OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), subject);
        pushed.push((digest, m.len()));
    }

    let r = api
        .send(Method::GET, &format!("/v2/ref/referrers/{subject}"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    for (entry, (digest, size)) in manifests.iter().zip(&pushed) {
        assert_eq!(entry["digest"], digest.as_str());
        assert_eq!(entry["size"], *size);
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
    }
    assert_eq!(manifests[0]["annotations"]["note"], "one");

    let r = api
        .send(
            Method::GET,
            &format!("/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sig"),
        )
        .await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );

    // No referrers: an empty index, not 404.
    let r = api
        .send(Method::GET, &format!("/v2/ref/referrers/{}", sha256(b"x")))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
    let r = api.send(Method::GET, "/v2/ref/referrers/sha256:zz").await;
    assert_error(r, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}
