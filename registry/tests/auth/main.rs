//! Access control from the outside: anonymous, basic (htpasswd bcrypt and
//! robots), the token flow (GET and the OAuth2 POST form), policy rules,
//! 401 vs 403, tampered and expired tokens, rate limits, policy reloads, and
//! real clients (skopeo, oci-client) logging in.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, sha256};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

const ROBOT: &str = "robot$ci";

const ROBOT_SECRET: &str = "ci-secret-7f3a9c2e5b1d8046";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

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

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("cannot run skopeo (installed by tests/tools/install.sh)")
}

mod identities;
mod operations;
mod tokens;
