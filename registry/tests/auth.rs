//! Access control from the outside: anonymous, basic (htpasswd bcrypt and
//! robots), the token flow (GET and the OAuth2 POST form), policy rules,
//! 401 vs 403, tampered and expired tokens, rate limits, policy reloads, and
//! real clients (skopeo, oci-client) logging in.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

const ROBOT: &str = "robot$ci";
const ROBOT_SECRET: &str = "ci-secret-7f3a9c2e5b1d8046";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn policy(extra_rules: &str) -> String {
    format!(
        r#"groups:
  dev: [alice]
robots:
  - name: {ROBOT}
    password_sha256: {}
rules:
  - repositories: ["public/*"]
    subjects: [anonymous]
    actions: [pull]
  - repositories: ["public/*", "team/*"]
    subjects: ["group:dev"]
    actions: [pull, push, delete]
  - repositories: ["ci/*"]
    subjects: ["robot:{ROBOT}"]
    actions: [pull, push]
  - repositories: ["prod/*"]
    subjects: ["robot:{ROBOT}"]
    actions: [pull]
{extra_rules}"#,
        hex::encode(sha2::Sha256::digest(ROBOT_SECRET.as_bytes()))
    )
}

struct Secured {
    server: Server,
    dir: tempfile::TempDir,
    http: Client,
}

impl Secured {
    fn start(extra_args: &[&str]) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let policy_file = dir.path().join("policy.yaml");
        std::fs::write(&policy_file, policy("")).unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let alice = bcrypt::hash("alice-pw", 5).unwrap();
        let bob = bcrypt::hash("bob-pw", 5).unwrap();
        std::fs::write(&htpasswd, format!("alice:{alice}\nbob:{bob}\n")).unwrap();
        let mut args = vec![
            "--policy-file".to_string(),
            policy_file.display().to_string(),
            "--htpasswd-file".to_string(),
            htpasswd.display().to_string(),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Secured {
            server: Server::start_with(&args),
            dir,
            http: Client::new(),
        }
    }

    fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }

    fn req(
        &self,
        method: Method,
        path: &str,
        user: Option<(&str, &str)>,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.server.url(path));
        match user {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    async fn push_blob(&self, repo: &str, data: &[u8], user: Option<(&str, &str)>) -> Response {
        self.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data)),
            user,
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
    }

    /// Pushes a one-layer image; asserts success.
    async fn push_image(&self, repo: &str, tag: &str, user: (&str, &str)) {
        let config = b"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        let layer = b"layer for auth tests";
        for blob in [&config[..], &layer[..]] {
            let r = self.push_blob(repo, blob, Some(user)).await;
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len()}]
        }))
        .unwrap();
        let r = self
            .req(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                Some(user),
            )
            .header("content-type", OCI_MANIFEST)
            .body(manifest)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    async fn token(&self, scopes: &[&str], user: Option<(&str, &str)>) -> Response {
        let mut query: Vec<(&str, &str)> = vec![("service", "berth")];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        self.req(Method::GET, "/auth/token", user)
            .query(&query)
            .send()
            .await
            .unwrap()
    }
}

async fn assert_error(r: Response, status: StatusCode, code: &str) -> Option<String> {
    assert_eq!(r.status(), status);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    challenge
}

#[tokio::test]
async fn anonymous_callers_get_public_pull_and_a_challenge_for_the_rest() {
    let s = Secured::start(&[]);
    let challenge = assert_error(
        s.req(Method::GET, "/v2/", None).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
    )
    .await
    .unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"{}/auth/token\",service=\"berth\"",
            s.server.base
        )
    );
    assert_eq!(
        s.req(Method::GET, "/v2/", Some(("alice", "alice-pw")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    s.push_image("public/base", "v1", ("alice", "alice-pw"))
        .await;
    s.push_image("team/secret", "v1", ("alice", "alice-pw"))
        .await;

    // Public pull works anonymously; push does not.
    let r = s
        .req(Method::GET, "/v2/public/base/manifests/v1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.push_blob("public/base", b"x", None).await;
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(
        challenge.ends_with("scope=\"repository:public/base:pull,push\""),
        "{challenge}"
    );

    // A private repository answers the same whether it exists or not.
    let existing = s
        .req(Method::GET, "/v2/team/secret/manifests/v1", None)
        .send()
        .await
        .unwrap();
    let missing = s
        .req(Method::GET, "/v2/team/nothing/manifests/v1", None)
        .send()
        .await
        .unwrap();
    assert_eq!(existing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        existing.text().await.unwrap(),
        missing.text().await.unwrap()
    );

    // The catalog shows only what the caller may pull. Without credentials
    // it is a challenge for the catalog scope; an anonymous token lists what
    // anonymous may pull.
    let r = s
        .req(Method::GET, "/v2/_catalog", None)
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(
        challenge.ends_with("scope=\"registry:catalog:*\""),
        "{challenge}"
    );
    let anonymous = s.token(&["registry:catalog:*"], None).await;
    let anonymous = anonymous.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/_catalog"))
        .bearer_auth(&anonymous)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["public/base"])
    );
    let r = s
        .req(Method::GET, "/v2/_catalog", Some(("alice", "alice-pw")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["public/base", "team/secret"])
    );
    let r = s
        .req(Method::GET, "/v2/_catalog", Some((ROBOT, ROBOT_SECRET)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!([]));
}

#[tokio::test]
async fn basic_credentials_users_groups_and_robots() {
    let s = Secured::start(&[]);
    let alice = Some(("alice", "alice-pw"));
    assert_eq!(
        s.push_blob("team/app", b"a", alice).await.status(),
        StatusCode::CREATED
    );
    // Authenticated but not granted: 403 DENIED, no challenge.
    let r = s.push_blob("team/app", b"b", Some(("bob", "bob-pw"))).await;
    assert_eq!(assert_error(r, StatusCode::FORBIDDEN, "DENIED").await, None);
    // Wrong password: 401 with the challenge.
    let r = s
        .push_blob("team/app", b"c", Some(("alice", "wrong")))
        .await;
    assert!(
        assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            .await
            .is_some()
    );
    let r = s
        .push_blob("team/app", b"c", Some(("nobody", "alice-pw")))
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // The robot pushes ci/*, only pulls prod/*.
    let robot = Some((ROBOT, ROBOT_SECRET));
    assert_eq!(
        s.push_blob("ci/app", b"r", robot).await.status(),
        StatusCode::CREATED
    );
    let r = s.push_blob("prod/app", b"r", robot).await;
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    let r = s
        .req(Method::GET, "/v2/prod/app/tags/list", robot)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    let r = s.push_blob("ci/app", b"r", Some((ROBOT, "guess"))).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Deleting needs delete; push is not enough.
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/ci/app/blobs/{}", sha256(b"r")),
            robot,
        )
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/team/app/blobs/{}", sha256(b"a")),
            alice,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Mounting needs pull on the source: the robot cannot read team/*.
    let r = s
        .req(
            Method::POST,
            &format!(
                "/v2/ci/app/blobs/uploads/?mount={}&from=team/app",
                sha256(b"a")
            ),
            robot,
        )
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
}

#[tokio::test]
async fn token_flow_grants_the_intersection_and_is_checked_on_every_request() {
    let s = Secured::start(&[]);
    let robot = Some((ROBOT, ROBOT_SECRET));
    let r = s
        .token(
            &[
                "repository:ci/app:pull,push",
                "repository:prod/app:pull,push,delete",
            ],
            robot,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap().to_string();
    let bearer = |method: Method, path: &str| {
        s.http
            .request(method, s.server.url(path))
            .bearer_auth(&token)
    };

    let r = bearer(
        Method::POST,
        &format!("/v2/ci/app/blobs/uploads/?digest={}", sha256(b"t")),
    )
    .body("t")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // The token was cut down to pull on prod/app: push is refused.
    let r = bearer(
        Method::POST,
        &format!("/v2/prod/app/blobs/uploads/?digest={}", sha256(b"t")),
    )
    .body("t")
    .send()
    .await
    .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    // A token for ci/app used on ci/other: ask for a new token.
    let r = bearer(Method::GET, "/v2/ci/other/tags/list")
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(
        challenge.contains("scope=\"repository:ci/other:pull\"")
            && challenge.contains("insufficient_scope"),
        "{challenge}"
    );

    // Tampered: flip a character of the signature.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&tampered)
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // Anonymous tokens carry only what anonymous may do.
    let r = s
        .token(
            &["repository:public/x:pull,push", "repository:ci/app:pull"],
            None,
        )
        .await;
    let anon = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/public/x/tags/list"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Wrong credentials at the token endpoint: 401 with a Basic challenge.
    let r = s
        .token(&["repository:ci/app:pull"], Some((ROBOT, "nope")))
        .await;
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(challenge.starts_with("Basic"), "{challenge}");

    // containerd's OAuth2 POST form.
    let r = s
        .http
        .post(s.server.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "password"),
                    ("username", ROBOT),
                    ("password", ROBOT_SECRET),
                    ("service", "berth"),
                    ("scope", "repository:ci/app:pull repository:team/app:pull"),
                    ("client_id", "containerd"),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// An automatic mount (`?mount=` without `from`) only links a blob from a
/// repository the caller may pull; otherwise it is a new upload, answered
/// exactly as for a digest stored nowhere.
#[tokio::test]
async fn automatic_mount_never_leaks_a_blob_the_caller_cannot_pull() {
    let s = Secured::start(&[]);
    let robot = Some((ROBOT, ROBOT_SECRET));
    let alice = Some(("alice", "alice-pw"));
    // A layer only the robot's repository holds (alice may not pull ci/*).
    let secret = b"layer that lives only in ci/secret";
    assert_eq!(
        s.push_blob("ci/secret", secret, robot).await.status(),
        StatusCode::CREATED
    );
    // A layer alice may read (public/*).
    let public = b"layer in a public repository";
    assert_eq!(
        s.push_blob("public/base", public, alice).await.status(),
        StatusCode::CREATED
    );
    let mount = |digest: String| {
        s.req(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={digest}"),
            alice,
        )
        .send()
    };

    let leaked = mount(sha256(secret)).await.unwrap();
    let nowhere = mount(sha256(b"stored nowhere")).await.unwrap();
    assert_eq!(leaked.status(), StatusCode::ACCEPTED);
    assert_eq!(nowhere.status(), StatusCode::ACCEPTED);
    let shape = |r: &Response| {
        let mut names: Vec<String> = r
            .headers()
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k != "date" && k != "x-request-id")
            .collect();
        names.sort();
        names
    };
    assert_eq!(shape(&leaked), shape(&nowhere));
    let r = s
        .req(
            Method::GET,
            &format!("/v2/team/app/blobs/{}", sha256(secret)),
            alice,
        )
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;

    // From a repository alice may pull, the automatic mount links it.
    let r = mount(sha256(public)).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .req(
            Method::GET,
            &format!("/v2/team/app/blobs/{}", sha256(public)),
            alice,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), &public[..]);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let s = Secured::start(&["--token-expiry-seconds", "1"]);
    let r = s
        .token(&["repository:ci/app:pull"], Some((ROBOT, ROBOT_SECRET)))
        .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND); // valid token, unknown repository
    // Past expiry plus the 5 s leeway.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let s = Secured::start(&[]);
    for _ in 0..10 {
        let r = s
            .push_blob("team/app", b"x", Some(("alice", "wrong")))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // alice is under attack from this address: even her right password is
    // refused for a while, and the answer says for how long.
    let r = s
        .push_blob("team/app", b"x", Some(("alice", "alice-pw")))
        .await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("alice"),
        "{body}"
    );
    // Someone else behind the same address is not locked out.
    let r = s.push_blob("team/app", b"y", Some(("bob", "bob-pw"))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN); // known, not granted: not 429
    let r = s
        .push_blob("public/app", b"y", Some(("alice", "alice-pw")))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let log = s.server.log();
    assert!(
        !log.contains("wrong") && !log.contains("alice-pw"),
        "a password reached the log"
    );
    let metrics = s.server.metrics();
    assert!(
        metrics.contains("berth_auth_failures_total{endpoint=\"registry\"} 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_auth_rate_limited_total{endpoint=\"registry\"} 2"),
        "{metrics}"
    );
}

/// Replaces the policy the way a ConfigMap update does: a new directory,
/// then an atomic swap of the `..data` symlink the file points through.
fn configmap_swap(dir: &Path, version: u32, content: &str) {
    let data = dir.join(format!("..v{version}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("policy.yaml"), content).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..v{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn policy_and_users_reload_and_an_invalid_policy_keeps_the_old_one() {
    let s = Secured::start(&[]);
    // Turn policy.yaml into a ConfigMap-style symlink.
    let cm = s.dir.path().join("cm");
    std::fs::create_dir_all(&cm).unwrap();
    configmap_swap(&cm, 1, &policy(""));
    std::fs::remove_file(s.policy_path()).unwrap();
    std::os::unix::fs::symlink(cm.join("..data/policy.yaml"), s.policy_path()).unwrap();

    let bob = Some(("bob", "bob-pw"));
    assert_eq!(
        s.push_blob("team/app", b"b", bob).await.status(),
        StatusCode::FORBIDDEN
    );
    let grant_bob =
        "  - repositories: [\"team/*\"]\n    subjects: [\"user:bob\"]\n    actions: [push]\n";
    configmap_swap(&cm, 2, &policy(grant_bob));
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.push_blob("team/app", b"b", bob).await.status() != StatusCode::CREATED {
        assert!(
            Instant::now() < deadline,
            "the new policy was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A user added to the htpasswd file can log in without a restart.
    let carol = bcrypt::hash("carol-pw", 5).unwrap();
    let htpasswd = s.dir.path().join("htpasswd");
    let mut users = std::fs::read_to_string(&htpasswd).unwrap();
    users.push_str(&format!("carol:{carol}\n"));
    std::fs::write(&htpasswd, users).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = s
            .req(Method::GET, "/v2/", Some(("carol", "carol-pw")))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new htpasswd user was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    configmap_swap(&cm, 3, "rules: [this is not a rule]\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !s.server.log().contains("keeping the previous version") {
        assert!(
            Instant::now() < deadline,
            "the invalid policy was not reported"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        s.push_blob("team/app", b"b2", bob).await.status(),
        StatusCode::CREATED
    );
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("cannot run skopeo (installed by tests/tools/install.sh)")
}

#[tokio::test]
async fn skopeo_and_oci_client_log_in() {
    let s = Secured::start(&[]);
    s.push_image("public/base", "v1", ("alice", "alice-pw"))
        .await;
    let addr = &s.server.addr;
    let src = format!("docker://{addr}/public/base:v1");
    let creds = format!("{ROBOT}:{ROBOT_SECRET}");

    // Anonymous pull of a public image, robot push to ci/* through the token flow.
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src,
        &format!("docker://{addr}/ci/app:v1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not to prod/*.
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src,
        &format!("docker://{addr}/prod/app:v1"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("denied") || err.contains("unauthorized"),
        "{err}"
    );
    // Wrong secret.
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{ROBOT}:wrong"),
        &format!("docker://{addr}/ci/app:v1"),
    ]);
    assert!(!out.status.success());
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{addr}/ci/app:v1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // oci-client with basic credentials, through the same token flow.
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::secrets::RegistryAuth;
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let image: oci_client::Reference = format!("{addr}/team/tool:v1").parse().unwrap();
    let alice = RegistryAuth::Basic("alice".into(), "alice-pw".into());
    let layers = vec![ImageLayer::oci_v1(b"tool".to_vec(), None)];
    client
        .push(
            &image,
            &layers,
            Config::oci_v1(b"{}".to_vec(), None),
            &alice,
            None,
        )
        .await
        .unwrap();
    let bob = RegistryAuth::Basic("bob".into(), "bob-pw".into());
    let other = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    assert!(other.pull_manifest(&image, &bob).await.is_err());
    let fresh = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let (_, digest) = fresh.pull_manifest(&image, &alice).await.unwrap();
    assert!(digest.starts_with("sha256:"));
}
