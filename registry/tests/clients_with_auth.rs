//! The real clients with access control on: each logs in the way its users
//! do (stored credentials, answered challenges, the token flow), pushes,
//! pulls back byte for byte, and lists the catalog where it can: the oras
//! CLI, the Python oras package (which resends a token it was told lacks a
//! scope), crane, regctl, and cosign signing and verifying (tag-based and
//! OCI 1.1 referrers). skopeo (auth.rs) and buildah, podman and containerd
//! (container_tools.rs) have their own tests with a policy.

mod common;

use std::path::Path;

use common::tools::{run, run_with};
use common::{Server, sha256};
use serde_json::Value;

const ALICE: (&str, &str) = ("alice", "alice-pw-4c1d");

/// A registry whose policy lets alice (group dev) pull, push and delete
/// team/*, and anyone pull public/*.
struct Secured {
    server: Server,
    dir: tempfile::TempDir,
}

impl Secured {
    fn start() -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "groups:\n  dev: [alice]\nrules:\n\
             - repositories: [\"team/*\"]\n  subjects: [\"group:dev\"]\n  actions: [pull, push, delete]\n\
             - repositories: [\"public/*\"]\n  subjects: [anonymous]\n  actions: [pull]\n",
        )
        .unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let hash = bcrypt::hash(ALICE.1, 5).unwrap();
        std::fs::write(&htpasswd, format!("{}:{hash}\n", ALICE.0)).unwrap();
        let server = Server::start_with(&[
            "--policy-file",
            policy.to_str().unwrap(),
            "--htpasswd-file",
            htpasswd.to_str().unwrap(),
        ]);
        Secured { server, dir }
    }

    fn host(&self) -> &str {
        &self.server.addr
    }

    fn work(&self, name: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A docker config directory with alice's credentials for this registry
    /// (what `docker login` writes; crane and cosign read it).
    fn docker_config(&self) -> std::path::PathBuf {
        use base64::Engine;
        let dir = self.work("docker-config");
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ALICE.0, ALICE.1));
        std::fs::write(
            dir.join("config.json"),
            serde_json::json!({"auths": {self.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        dir
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn catalog(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn oras_cli_logs_in_pushes_pulls_and_lists() {
    let reg = Secured::start();
    let work = reg.work("oras");
    let config = work.join("auth.json");
    let login = [
        "login",
        "--plain-http",
        "--registry-config",
        s(&config),
        "-u",
        ALICE.0,
        "-p",
        ALICE.1,
        reg.host(),
    ];
    run(&work, "oras", login);
    std::fs::write(work.join("hello.txt"), b"hello from the oras CLI\n").unwrap();
    let target = format!("{}/team/oras:v1", reg.host());
    let cfg = ["--plain-http", "--registry-config", s(&config)];
    run(
        &work,
        "oras",
        [&["push"][..], &cfg, &[&target, "hello.txt"]].concat(),
    );
    let out = work.join("out");
    run(
        &work,
        "oras",
        [&["pull"][..], &cfg, &["-o", s(&out), &target]].concat(),
    );
    assert_eq!(
        std::fs::read(out.join("hello.txt")).unwrap(),
        b"hello from the oras CLI\n"
    );
    // The catalog: oras sends the stored credentials only after a challenge.
    let listed = run(
        &work,
        "oras",
        [&["repo", "ls"][..], &cfg, &[reg.host()]].concat(),
    );
    assert_eq!(catalog(&listed), ["team/oras"]);
    let tags = run(
        &work,
        "oras",
        [&["repo", "tags"][..], &cfg, &[&target[..target.len() - 3]]].concat(),
    );
    assert_eq!(catalog(&tags), ["v1"]);
}

#[test]
fn python_oras_pushes_and_pulls_with_token_auth() {
    let reg = Secured::start();
    let work = reg.work("oras-py");
    std::fs::write(work.join("artifact.txt"), b"pushed by oras-py\n").unwrap();
    let script = r#"
import os, sys
import oras.client
host, user, password = sys.argv[1:4]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.login(username=user, password=password, hostname=host)
target = f"{host}/team/oras-py:v1"
response = client.push(files=["artifact.txt"], target=target)
if response.status_code not in (200, 201):
    sys.exit(f"push answered {response.status_code}: {response.text}")
pulled = client.pull(target=target, outdir="pulled")
print("\n".join(pulled))
"#;
    std::fs::write(work.join("push_pull.py"), script).unwrap();
    // HOME: login writes a docker config there.
    let out = run_with(
        &work,
        "python-oras",
        ["push_pull.py", reg.host(), ALICE.0, ALICE.1],
        &[("HOME", s(&work))],
    );
    assert!(
        String::from_utf8_lossy(&out).contains("artifact.txt"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        std::fs::read(work.join("pulled/artifact.txt")).unwrap(),
        b"pushed by oras-py\n"
    );
    // It took a token refresh after a 403 on the connection that resent the
    // pull token (see auth::Refusals); the log shows the DENIED answer.
    let log = reg.server.log();
    assert!(log.contains("status=403"), "{log}");
}

/// A gzip-less tar layer with one file, written by `tar`.
fn layer_tar(work: &Path, file: &str, content: &[u8]) -> std::path::PathBuf {
    let root = work.join("layer-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(file), content).unwrap();
    let tar = work.join("layer.tar");
    let status = std::process::Command::new("tar")
        .args(["-cf", s(&tar), "-C", s(&root), file])
        .status()
        .unwrap();
    assert!(status.success());
    tar
}

#[test]
fn crane_pushes_pulls_lists_and_cosign_signs_and_verifies() {
    let reg = Secured::start();
    let work = reg.work("crane");
    let docker = reg.docker_config();
    let env = [("DOCKER_CONFIG", s(&docker))];
    let image = format!("{}/team/crane:v1", reg.host());
    let tar = layer_tar(&work, "hello.txt", b"hello from crane\n");
    run_with(
        &work,
        "crane",
        ["append", "--insecure", "-f", s(&tar), "-t", &image],
        &env,
    );
    let digest = String::from_utf8(run_with(
        &work,
        "crane",
        ["digest", "--insecure", &image],
        &env,
    ))
    .unwrap()
    .trim()
    .to_string();
    let exported = run_with(&work, "crane", ["export", "--insecure", &image, "-"], &env);
    assert!(
        exported
            .windows(b"hello from crane\n".len())
            .any(|w| w == b"hello from crane\n"),
        "the pulled filesystem lacks the pushed file"
    );
    let listed = run_with(&work, "crane", ["catalog", "--insecure", reg.host()], &env);
    assert_eq!(catalog(&listed), ["team/crane"]);

    // cosign: a key pair, then sign and verify, tag-based and as an OCI 1.1
    // referrer.
    let keys = reg.work("cosign");
    let env = [
        ("DOCKER_CONFIG", s(&docker)),
        ("COSIGN_PASSWORD", "cosign-test-pw"),
        ("COSIGN_YES", "true"),
    ];
    run_with(&keys, "cosign", ["generate-key-pair"], &env);
    let by_digest = format!("{}/team/crane@{digest}", reg.host());
    // The sigstore bundle as an OCI 1.1 referrer, then the tag-based
    // signature (`sha256-<hex>.sig`) of older cosigns. No transparency log.
    for new_bundle_format in ["true", "false"] {
        let bundle = format!("--new-bundle-format={new_bundle_format}");
        let insecure = ["--allow-insecure-registry", "--allow-http-registry"];
        run_with(
            &keys,
            "cosign",
            [
                &["sign", "--key", "cosign.key", "--use-signing-config=false"][..],
                &["--tlog-upload=false", &bundle],
                &insecure,
                &[&by_digest],
            ]
            .concat(),
            &env,
        );
        let verified = run_with(
            &keys,
            "cosign",
            [
                &[
                    "verify",
                    "--key",
                    "cosign.pub",
                    "--insecure-ignore-tlog=true",
                    &bundle,
                ][..],
                &insecure,
                &[&by_digest],
            ]
            .concat(),
            &env,
        );
        let claims: Value = serde_json::from_slice(&verified).unwrap_or_else(|e| {
            panic!(
                "cosign verify printed: {e}: {}",
                String::from_utf8_lossy(&verified)
            )
        });
        assert_eq!(
            claims[0]["critical"]["image"]["docker-manifest-digest"], digest,
            "{claims}"
        );
    }
    // The bundle is a referrer of the image.
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ALICE.0, ALICE.1))
    };
    let reply = common::raw_request(
        reg.host(),
        &format!(
            "GET /v2/team/crane/referrers/{digest} HTTP/1.1\r\nHost: x\r\n\
             Authorization: Basic {basic}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        reply.contains("application/vnd.dev.sigstore.bundle.v0.3+json"),
        "{reply}"
    );
    let referrers = run_with(
        &work,
        "crane",
        [
            "manifest",
            "--insecure",
            &format!(
                "{}/team/crane:{}",
                reg.host(),
                digest.replace(':', "-") + ".sig"
            ),
        ],
        &[("DOCKER_CONFIG", s(&docker))],
    );
    assert!(!referrers.is_empty(), "the tag-based signature is stored");
}

#[test]
fn regctl_logs_in_pushes_pulls_and_lists() {
    let reg = Secured::start();
    let work = reg.work("regctl");
    let config = work.join("regctl.json");
    let env = [("REGCTL_CONFIG", s(&config))];
    run_with(
        &work,
        "regctl",
        ["registry", "set", "--tls", "disabled", reg.host()],
        &env,
    );
    run_with(
        &work,
        "regctl",
        [
            "registry",
            "login",
            "-u",
            ALICE.0,
            "-p",
            ALICE.1,
            reg.host(),
        ],
        &env,
    );
    let content = b"hello from regctl\n";
    std::fs::write(work.join("hello.txt"), content).unwrap();
    let artifact = format!("{}/team/regctl:v1", reg.host());
    run_with(
        &work,
        "regctl",
        [
            "artifact",
            "put",
            "--artifact-type",
            "application/vnd.berth.test",
            "--file",
            "hello.txt",
            &artifact,
        ],
        &env,
    );
    let got = run_with(&work, "regctl", ["artifact", "get", &artifact], &env);
    assert_eq!(got, content);
    let manifest = run_with(
        &work,
        "regctl",
        ["manifest", "get", "--format", "raw-body", &artifact],
        &env,
    );
    let layer_digest = serde_json::from_slice::<Value>(&manifest).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(layer_digest, sha256(content));
    let listed = run_with(&work, "regctl", ["repo", "ls", reg.host()], &env);
    assert_eq!(catalog(&listed), ["team/regctl"]);
}

/// `berth ls` logs in through the token flow and lists what alice may pull.
#[test]
fn berth_ls_logs_in_and_lists() {
    let reg = Secured::start();
    let work = reg.work("ls");
    let config = work.join("auth.json");
    run(
        &work,
        "oras",
        [
            "login",
            "--plain-http",
            "--registry-config",
            s(&config),
            "-u",
            ALICE.0,
            "-p",
            ALICE.1,
            reg.host(),
        ],
    );
    std::fs::write(work.join("a.txt"), b"listed\n").unwrap();
    let target = format!("{}/team/listed:v1", reg.host());
    run(
        &work,
        "oras",
        [
            "push",
            "--plain-http",
            "--registry-config",
            s(&config),
            &target,
            "a.txt",
        ],
    );
    let url = format!("http://{}", reg.host());
    let ls = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.arg("ls")
            .args(["--url", &url])
            .args(args)
            .env_remove("BERTH_PASSWORD");
        if let Some(p) = password {
            cmd.env("BERTH_PASSWORD", p);
        }
        cmd.output().unwrap()
    };
    let out = ls(&["-u", ALICE.0], Some(ALICE.1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("team/listed") && text.contains("     1"),
        "{text}"
    );
    let out = ls(&["-u", ALICE.0, "team/listed"], Some(ALICE.1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("v1") && text.contains("sha256:"), "{text}");
    // Anonymous: nothing of team/* is shown.
    let out = ls(&[], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("team/listed"),
        "{text}"
    );
    // A wrong password is an error that says so.
    let out = ls(&["-u", ALICE.0], Some("wrong"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{:?}",
        out
    );
}
