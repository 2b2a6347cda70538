//! Input that lies or is malformed gets the spec's error, as JSON with a
//! code, and changes nothing: descriptor sizes that do not match the stored
//! content, image manifests without a config, paths that are not UTF-8, a
//! zero-length suffix range, tokens not valid yet, and headers that try to
//! inject into the token challenge.

mod common;

use common::{Client, OCI_INDEX, OCI_MANIFEST, Server, assert_error, raw_request, sha256};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

async fn tags(c: &Client, repo: &str) -> Value {
    c.req(Method::GET, &format!("/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn descriptor_sizes_must_match_the_stored_content() {
    let server = Server::start();
    let c = Client::new(&server);
    let (good, good_digest) = c.push_image("sizes/app", "v1", b"first layer").await;
    let config = br#"{"os":"linux","architecture":"amd64"}"#;
    let config_digest = sha256(config);
    let layer = vec![7u8; 4096];
    let layer_digest = c.push_blob("sizes/app", &layer).await;
    let before = tags(&c, "sizes/app").await;

    let manifest = |layer_size: u64| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer_size}]
        }))
        .unwrap()
    };
    for lie in [4095u64, 4097, (1u64 << 63) - 1] {
        let r = c
            .put_manifest("sizes/app", "lying", OCI_MANIFEST, &manifest(lie))
            .await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&layer_digest)
                && message.contains(&lie.to_string())
                && message.contains("4096"),
            "{message}"
        );
    }
    // A size past what JSON integers of the manifest format hold.
    let r = c
        .put_manifest(
            "sizes/app",
            "lying",
            OCI_MANIFEST,
            String::from_utf8(manifest(4096))
                .unwrap()
                .replace("4096", "18446744073709551616")
                .as_bytes(),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    // A lying config descriptor, pushed by digest with tags: no tag is left.
    let lying_config = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len() + 1},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": 4096}]
    }))
    .unwrap();
    let r = c
        .put_manifest(
            "sizes/app",
            &format!("{}?tag=a&tag=b", sha256(&lying_config)),
            OCI_MANIFEST,
            &lying_config,
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    // An index whose child's size is wrong.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": good_digest, "size": good.len() - 1}]
    }))
    .unwrap();
    let r = c
        .put_manifest("sizes/app", "index", OCI_INDEX, &index)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    // A well-known empty config claimed with a wrong size links nothing.
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.test",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 3},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": 4096}]
    }))
    .unwrap();
    let r = c
        .put_manifest("sizes/app", "artifact", OCI_MANIFEST, &artifact)
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    let r = c
        .req(
            Method::HEAD,
            &format!("/v2/sizes/app/blobs/{}", sha256(b"{}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    assert_eq!(
        tags(&c, "sizes/app").await,
        before,
        "a refusal changed tags"
    );
    // The truth is accepted.
    let r = c
        .put_manifest("sizes/app", "honest", OCI_MANIFEST, &manifest(4096))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn image_manifests_need_a_config() {
    let server = Server::start();
    let c = Client::new(&server);
    let layer = c.push_blob("cfg/app", b"a layer").await;
    let layers = json!([{"mediaType": LAYER_TYPE, "digest": layer, "size": 7}]);
    for (media_type, body) in [
        (
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers}),
        ),
        (
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": null, "layers": layers}),
        ),
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": layers}),
        ),
    ] {
        let r = c
            .put_manifest(
                "cfg/app",
                "v1",
                media_type,
                &serde_json::to_vec(&body).unwrap(),
            )
            .await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("config"),
            "{body}"
        );
    }
    let r = c
        .req(Method::GET, "/v2/cfg/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn paths_that_are_not_utf8_get_the_spec_error() {
    let server = Server::start();
    let c = Client::new(&server);
    c.push_image("known/img", "v1", b"layer").await;
    for (path, status, code) in [
        ("/v2/known/img/manifests/%FF%FE", "400", "MANIFEST_INVALID"),
        ("/v2/kn%C3%28own/tags/list", "400", "NAME_INVALID"),
        ("/v2/known/img/blobs/sha256:%FF", "400", "DIGEST_INVALID"),
        ("/v2/%FF/blobs/uploads/", "400", "NAME_INVALID"),
        ("/v2/known/img/nothing-here/x", "404", "UNSUPPORTED"),
        ("/nowhere/%FF", "404", "UNSUPPORTED"),
    ] {
        let reply = raw_request(
            &server.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {reply}"
        );
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {reply}"));
        assert_eq!(json["errors"][0]["code"], code, "{path}: {reply}");
    }
    // A method no route takes, on a fixed route: JSON too.
    let r = c.req(Method::POST, "/healthz").send().await.unwrap();
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    assert_eq!(tags(&c, "known/img").await["tags"], json!(["v1"]));
}

#[tokio::test]
async fn a_zero_length_suffix_range_is_unsatisfiable() {
    let server = Server::start();
    let c = Client::new(&server);
    let digest = c.push_blob("ranges/app", b"0123456789").await;
    let path = format!("/v2/ranges/app/blobs/{digest}");
    let r = c
        .req(Method::GET, &path)
        .header("range", "bytes=-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-range"], "bytes */10");
    assert_error(r, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID").await;
    let r = c
        .req(Method::GET, &path)
        .header("range", "bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"789");
}

/// A registry with access control on, its token key, and a client.
struct Secured {
    server: Server,
    _dir: tempfile::TempDir,
    c: Client,
}

fn secured() -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n- repositories: [\"open/*\"]\n  subjects: [anonymous]\n  actions: [pull]\n",
    )
    .unwrap();
    let server = Server::start_with(&["--policy-file", policy.to_str().unwrap()]);
    let c = Client::new(&server);
    Secured {
        server,
        _dir: dir,
        c,
    }
}

#[tokio::test]
async fn tokens_not_valid_yet_are_refused() {
    let s = secured();
    let key = std::fs::read(s.server.data_dir.join("token-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&key).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |nbf: u64| {
        let claims = json!({
            "iss": "berth", "sub": "", "aud": "berth", "iat": now, "nbf": nbf,
            "exp": now + 7200, "jti": "t",
            "access": [{"type": "repository", "name": "open/app", "actions": ["pull"]}]
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &key,
        )
        .unwrap()
    };
    let get = |t: String| {
        s.c.req(Method::GET, "/v2/open/app/tags/list")
            .bearer_auth(t)
            .send()
    };
    // Signed with the server's own key: valid now, so the repository is
    // simply unknown.
    let r = get(token(now - 1)).await.unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    let r = get(token(now + 3600)).await.unwrap();
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn forwarded_headers_cannot_inject_into_the_challenge() {
    let s = secured();
    let r =
        s.c.req(Method::GET, "/v2/")
            .header("x-forwarded-proto", "https\",evil=\"x")
            .send()
            .await
            .unwrap();
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"http://{}/auth/token\",service=\"berth\"",
            s.server.addr
        )
    );
    let r =
        s.c.req(Method::GET, "/v2/")
            .header("x-forwarded-proto", "HTTPS")
            .send()
            .await
            .unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"https://"),
        "{challenge}"
    );
    // A Host with a quote: the realm falls back to a harmless name.
    let reply = raw_request(
        &s.server.addr,
        "GET /v2/ HTTP/1.1\r\nHost: x\",evil=\"y\r\nConnection: close\r\n\r\n",
    );
    assert!(
        reply.contains("realm=\"http://localhost/auth/token\""),
        "{reply}"
    );
    assert!(!reply.contains("evil"), "{reply}");
}
