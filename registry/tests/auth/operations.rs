//! What the operator reads from a running registry, and the node endpoint
//! it runs: the operations endpoints beside `/metrics` (the policy loaded,
//! usage per repository pattern), probes kept out of the info log, and
//! `berth node-proxy` forwarding a local port with the token realm naming
//! the address the client used.

use super::*;

async fn ops(server: &Server, path: &str) -> (StatusCode, String) {
    let r = Client::new()
        .get(format!("http://{}{path}", server.metrics_addr))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

fn file_sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn operations_endpoints_report_the_policy_loaded_and_usage() {
    let s = Secured::start(&[]);
    let robot = (ROBOT, ROBOT_SECRET);

    // The policy as loaded: the SHA-256 of the file's bytes.
    let (status, body) = ops(&s.server, "/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["policy_sha256"], file_sha256(&s.policy_path()), "{body}");

    // A new file is reported once it is reloaded.
    std::fs::write(
        s.policy_path(),
        policy("  - repositories: [\"more/*\"]\n    subjects: [anonymous]\n    actions: [pull]\n"),
    )
    .unwrap();
    let want = file_sha256(&s.policy_path());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = ops(&s.server, "/status").await;
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["policy_sha256"] == want.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "still {body}, want {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Usage: what the repositories of a name or a pattern hold, summed.
    s.push_image("ci/a", "v1", robot).await;
    s.push_image("ci/a", "v2", robot).await;
    s.push_image("ci/b", "v1", robot).await;
    let (status, body) = ops(&s.server, "/usage?repository=ci/*").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["repositories"], 2, "{body}");
    assert_eq!(all["tags"], 3, "{body}");
    assert_eq!(all["manifests"], 2, "{body}");
    let (_, body) = ops(&s.server, "/usage?repository=ci%2Fa").await;
    let one: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (one["repositories"].as_u64(), one["tags"].as_u64()),
        (Some(1), Some(2))
    );
    // config + layer + manifest, each once in the repository.
    let bytes = one["bytes"].as_u64().unwrap();
    assert!(bytes > 20 && bytes < 2000, "{body}");
    assert_eq!(all["bytes"].as_u64().unwrap(), 2 * bytes, "{body}");
    let (_, body) = ops(&s.server, "/usage?repository=nothing/here").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"repositories": 0, "tags": 0, "manifests": 0, "bytes": 0})
    );
    let (status, _) = ops(&s.server, "/usage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // None of it on the API's listener.
    let r = s.req(Method::GET, "/status", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_policy_status_says_so() {
    let server = Server::start();
    let (status, body) = ops(&server, "/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"policy_sha256": null})
    );
}

#[tokio::test]
async fn probes_are_not_in_the_info_log() {
    let server = Server::start();
    let http = Client::new();
    for path in ["/readyz", "/healthz", "/readyz", "/v2/"] {
        let r = http.get(server.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}");
        r.bytes().await.unwrap();
    }
    // The /v2/ line shows the request log is on; the probes are not in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("path=/v2/") {
        assert!(
            Instant::now() < deadline,
            "no request line: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    assert!(!log.contains("path=/readyz"), "{log}");
    assert!(!log.contains("path=/healthz"), "{log}");
}

/// `berth node-proxy` on an ephemeral port, and that port (from its log).
struct NodeProxy {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl NodeProxy {
    fn start(upstream: &str) -> NodeProxy {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("proxy.log");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "node-proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream,
            ])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listen=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches(',')
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "node-proxy did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        NodeProxy {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn node_proxy_forwards_and_the_token_realm_names_it() {
    let s = Secured::start(&[]);
    s.push_image("ci/app", "v1", (ROBOT, ROBOT_SECRET)).await;
    let proxy = NodeProxy::start(&s.server.addr);
    let base = format!("http://{}", proxy.addr);
    let http = Client::new();

    // The challenge points at the address the client used: the proxy's.
    let r = http
        .get(format!("{base}/v2/ci/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let realm = format!("{base}/auth/token");
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{challenge}"
    );
    // The token flow through it, as containerd follows it.
    let t: Value = http
        .get(&realm)
        .query(&[("service", "berth"), ("scope", "repository:ci/app:pull")])
        .basic_auth(ROBOT, Some(ROBOT_SECRET))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["token"].as_str().expect("a token");
    let r = http
        .get(format!("{base}/v2/ci/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let manifest: Value = r.json().await.unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let body = http
        .get(format!("{base}/v2/ci/app/blobs/{layer}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256(&body), layer);
}
