//! Two `berth` processes on one PostgreSQL database and one bucket prefix
//! (the servers of tests/backends/up.sh), as replicas behind a load
//! balancer see them: an upload started on one continues on the other,
//! what one stores the other serves, and a tag moved or deleted on one is
//! what the other serves on the next request (replicas read their writes).

mod common;

use common::{Client, OCI_MANIFEST, Server, postgres_s3_args, sha256};
use reqwest::{Method, StatusCode};

fn pair() -> (Server, Server) {
    let backend = postgres_s3_args();
    let a = Server::start_on_backend(backend.clone(), &[]);
    let b = Server::start_on_backend(backend, &[]);
    (a, b)
}

async fn patch(c: &Client, location: &str, offset: usize, chunk: &[u8]) -> String {
    let r = c
        .req(Method::PATCH, location)
        .header(
            "content-range",
            format!("{offset}-{}", offset + chunk.len() - 1),
        )
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        r.headers()["range"].to_str().unwrap(),
        format!("0-{}", offset + chunk.len() - 1)
    );
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn an_upload_moves_between_processes_and_both_serve_it() {
    let (a, b) = pair();
    let (ca, cb) = (Client::new(&a), Client::new(&b));

    // POST on A; PATCH on B (more than a part: a multipart upload), PATCH
    // on A (less than a part: the tail), PATCH on B; PUT on A.
    let chunks: Vec<Vec<u8>> = [9usize << 20, 1 << 20, 6 << 20]
        .iter()
        .enumerate()
        .map(|(i, n)| (0..*n).map(|j| ((i * 7 + j) % 253) as u8).collect())
        .collect();
    let r = ca
        .req(Method::POST, "/v2/pair/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut location = r.headers()["location"].to_str().unwrap().to_string();
    let mut offset = 0;
    for (chunk, client) in chunks.iter().zip([&cb, &ca, &cb]) {
        location = patch(client, &location, offset, chunk).await;
        offset += chunk.len();
    }
    let layer = chunks.concat();
    let digest = sha256(&layer);
    let r = ca
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    // A manifest pushed on B names the layer A completed.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = cb.push_blob("pair/app", config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": layer.len()}]
    }))
    .unwrap();
    let r = cb
        .put_manifest("pair/app", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    // Both pull all of it.
    for c in [&ca, &cb] {
        let r = c
            .req(Method::GET, "/v2/pair/app/manifests/v1")
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap(), manifest);
        let r = c
            .req(Method::GET, &format!("/v2/pair/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(sha256(&r.bytes().await.unwrap()), digest);
    }
}

#[tokio::test]
async fn a_tag_moved_or_deleted_on_one_process_is_seen_by_the_other_at_once() {
    let (a, b) = pair();
    let (ca, cb) = (Client::new(&a), Client::new(&b));
    let (_, first) = ca.push_image("pair/moving", "latest", b"first").await;
    // B reads (and caches) the tag.
    let digest_on = |c: &Client| {
        let r = c
            .req(Method::HEAD, "/v2/pair/moving/manifests/latest")
            .header("accept", OCI_MANIFEST);
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(digest_on(&cb).await, first);
    assert_eq!(digest_on(&cb).await, first);

    // Moved on A: B serves the new target on the very next request.
    let (_, second) = ca.push_image("pair/moving", "latest", b"second").await;
    assert_eq!(digest_on(&cb).await, second);
    // Deleted on A: gone on B at once.
    let r = ca
        .req(Method::DELETE, "/v2/pair/moving/manifests/latest")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = cb
        .req(Method::HEAD, "/v2/pair/moving/manifests/latest")
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Failed logins are counted in the shared database: a correct login on
/// one process clears the count on both, and ten wrong passwords spread
/// over two processes lock the user out of both.
#[tokio::test]
async fn failed_logins_count_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "groups:\n  dev: [alice]\nrules:\n  - repositories: [\"*\"]\n    subjects: [\"group:dev\"]\n    actions: [pull, push]\n",
    )
    .unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("alice-pw", 5).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let key = dir.path().join("token-key.pem");
    let args = [
        "--policy-file",
        policy.to_str().unwrap(),
        "--htpasswd-file",
        htpasswd.to_str().unwrap(),
        "--token-key-file",
        key.to_str().unwrap(),
    ];
    let backend = postgres_s3_args();
    let a = Server::start_on_backend(backend.clone(), &args);
    let b = Server::start_on_backend(backend, &args);
    let http = reqwest::Client::new();
    let catalog = |server: &Server, password: &str| {
        http.get(server.url("/v2/_catalog"))
            .basic_auth("alice", Some(password))
            .send()
    };

    let fail = |count: usize| {
        let (a, b, catalog) = (&a, &b, &catalog);
        async move {
            for i in 0..count {
                let server = if i % 2 == 0 { a } else { b };
                let r = catalog(server, "wrong").await.unwrap();
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
            }
        }
    };
    // Nine failures, then a correct login on one process: the count is
    // cleared for both (nine more would otherwise pass the limit of ten).
    fail(9).await;
    let r = catalog(&a, "alice-pw").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    fail(9).await;
    let r = catalog(&b, "alice-pw").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Ten, spread over both: locked out of both.
    fail(10).await;
    for server in [&a, &b] {
        let r = catalog(server, "alice-pw").await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
    }
}
