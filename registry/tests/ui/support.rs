//! What the UI tests share: a registry with a policy and three users, a
//! client with credentials that pushes images, indexes and referrers, and
//! a small cookie jar for the UI's forms.

use base64::Engine;
use reqwest::Method;
use serde_json::json;

use crate::common::{OCI_INDEX, OCI_MANIFEST, Server, sha256};

pub const ALICE: (&str, &str) = ("alice", "alice-pw-7f3e");
pub const BOB: (&str, &str) = ("bob", "bob-pw-91aa");

/// alice may pull, push and delete `team/*`, `hpc/*` and `private/*`; bob
/// may pull `team/*` and `hpc/*`; anonymous may pull `public/*`; `team/*`
/// has a 1 GiB quota.
pub struct Secured {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl Secured {
    pub fn start() -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "groups:\n  dev: [alice]\n  readers: [bob]\nrules:\n\
             - repositories: [\"team/*\", \"hpc/*\", \"private/*\"]\n  subjects: [\"group:dev\"]\n  actions: [pull, push, delete]\n\
             - repositories: [\"team/*\", \"hpc/*\"]\n  subjects: [\"group:readers\"]\n  actions: [pull]\n\
             - repositories: [\"public/*\"]\n  subjects: [anonymous, authenticated]\n  actions: [pull]\n\
             - repositories: [\"public/*\"]\n  subjects: [\"group:dev\"]\n  actions: [push]\n\
             repositories:\n- name: team/*\n  quota_bytes: 1073741824\n  immutable_tags: [\"v*\"]\n",
        )
        .unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let mut users = String::new();
        for (user, password) in [ALICE, BOB] {
            users.push_str(&format!("{user}:{}\n", bcrypt::hash(password, 5).unwrap()));
        }
        std::fs::write(&htpasswd, users).unwrap();
        let server = Server::start_with(&[
            "--policy-file",
            policy.to_str().unwrap(),
            "--htpasswd-file",
            htpasswd.to_str().unwrap(),
        ]);
        Secured { server, dir }
    }

    pub fn work(&self, name: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A docker config directory with alice's credentials (oras, cosign).
    pub fn docker_config(&self) -> std::path::PathBuf {
        let dir = self.work("docker-config");
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ALICE.0, ALICE.1));
        std::fs::write(
            dir.join("config.json"),
            json!({"auths": {&self.server.addr: {"auth": auth}}}).to_string(),
        )
        .unwrap();
        dir
    }
}

/// A registry client that sends basic credentials (or none).
pub struct Pusher {
    http: reqwest::Client,
    base: String,
    creds: Option<(&'static str, &'static str)>,
}

impl Pusher {
    pub fn new(server: &Server, creds: Option<(&'static str, &'static str)>) -> Pusher {
        Pusher {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            creds,
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match self.creds {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    pub async fn blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        digest
    }

    /// PUTs a manifest; returns its digest.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &serde_json::Value,
    ) -> String {
        let bytes = serde_json::to_vec(body).unwrap();
        let r = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        sha256(&bytes)
    }

    /// An image for `arch` with one layer; returns (digest, manifest size).
    pub async fn image(
        &self,
        repo: &str,
        reference: &str,
        arch: &str,
        layer: &[u8],
    ) -> (String, u64) {
        let config = format!(r#"{{"os":"linux","architecture":"{arch}"}}"#);
        let config_digest = self.blob(repo, config.as_bytes()).await;
        let layer_digest = self.blob(repo, layer).await;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
            "annotations": {"org.opencontainers.image.source": "https://example.org/berth-ui-test"}
        });
        let digest = self.manifest(repo, reference, OCI_MANIFEST, &m).await;
        (digest, serde_json::to_vec(&m).unwrap().len() as u64)
    }

    /// An index of an amd64 and an arm64 image, tagged `tag`; returns its digest.
    pub async fn index(&self, repo: &str, tag: &str) -> String {
        let (amd, amd_size) = self
            .image(repo, &format!("{tag}-amd64"), "amd64", b"amd64 layer bytes")
            .await;
        let (arm, arm_size) = self
            .image(
                repo,
                &format!("{tag}-arm64"),
                "arm64",
                b"arm64 layer bytes!",
            )
            .await;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
            ]
        });
        self.manifest(repo, tag, OCI_INDEX, &index).await
    }

    /// An artifact of `artifact_type` whose subject is `subject`.
    pub async fn referrer(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: &str,
        data: &[u8],
    ) -> String {
        let subject_manifest = self
            .req(Method::GET, &format!("/v2/{repo}/manifests/{subject}"))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .unwrap();
        let subject_type = subject_manifest
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(OCI_MANIFEST)
            .to_string();
        let subject_size = subject_manifest.bytes().await.unwrap().len();
        let layer = self.blob(repo, data).await;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer, "size": data.len()}],
            "subject": {"mediaType": subject_type, "digest": subject, "size": subject_size},
            "annotations": {"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}
        });
        let digest = sha256(&serde_json::to_vec(&m).unwrap());
        self.manifest(repo, &digest, OCI_MANIFEST, &m).await
    }
}

/// Cookies a browser would keep, from `Set-Cookie` headers.
#[derive(Default, Clone)]
pub struct Jar(pub Vec<(String, String)>);

impl Jar {
    pub fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != k);
            if !v.contains("Max-Age=0") {
                self.0.push((k.to_string(), val.to_string()));
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
