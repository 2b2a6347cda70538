//! The container tools of the Kubernetes world against a real `berth`:
//! buildah builds and pushes, podman pulls and pushes, and containerd pulls
//! both with `ctr` and through its CRI image service (the kubelet's path).
//! Every tool is the real one; a missing tool fails the test.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// Runs a tool and returns its stdout; panics with its output on failure.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (installed by tests/tools/install.sh): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Flags that give buildah/podman their own throw-away image store.
fn storage_flags(dir: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        dir.join("root").display().to_string(),
        "--runroot".into(),
        dir.join("run").display().to_string(),
        "--storage-driver".into(),
        "vfs".into(),
    ]
}

fn with_storage<'a>(flags: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    flags
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect()
}

/// Builds a one-file image with buildah and pushes it; returns the file's content.
fn buildah_push(server: &Server, work: &Path, image: &str) -> String {
    buildah_push_as(server, work, image, None)
}

fn buildah_push_as(server: &Server, work: &Path, image: &str, creds: Option<&str>) -> String {
    let flags = storage_flags(&work.join("buildah"));
    let content = format!("built for {image}\n");
    let file = work.join("hello.txt");
    std::fs::write(&file, &content).unwrap();
    let ctr = run("buildah", &with_storage(&flags, &["from", "scratch"]));
    let ctr = ctr.trim();
    run(
        "buildah",
        &with_storage(&flags, &["copy", ctr, file.to_str().unwrap(), "/hello.txt"]),
    );
    run(
        "buildah",
        &with_storage(&flags, &["config", "--cmd", "/hello.txt", ctr]),
    );
    run(
        "buildah",
        &with_storage(&flags, &["commit", ctr, "localhost/built:1"]),
    );
    let dest = format!("docker://{}/{image}", server.addr);
    let mut push = vec!["push", "--tls-verify=false"];
    if let Some(creds) = creds {
        push.extend(["--creds", creds]);
    }
    push.extend(["localhost/built:1", dest.as_str()]);
    run("buildah", &with_storage(&flags, &push));
    content
}

/// The digest the registry serves for a manifest.
fn manifest_digest(server: &Server, repo: &str, tag: &str) -> String {
    let out = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{}/{repo}:{tag}", server.addr),
        ],
    );
    out.trim().to_string()
}

#[test]
fn buildah_push_podman_pull_and_push() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    buildah_push(&server, work.path(), "tools/hello:1");
    let digest = manifest_digest(&server, "tools/hello", "1");

    let flags = storage_flags(&work.path().join("podman"));
    let image = format!("{}/tools/hello:1", server.addr);
    run(
        "podman",
        &with_storage(&flags, &["pull", "--tls-verify=false", &image]),
    );
    let pulled = run(
        "podman",
        &with_storage(
            &flags,
            &["image", "inspect", "--format", "{{.Digest}}", &image],
        ),
    );
    assert_eq!(pulled.trim(), digest);

    let copy = format!("docker://{}/tools/hello:copy", server.addr);
    run(
        "podman",
        &with_storage(&flags, &["push", "--tls-verify=false", &image, &copy]),
    );
    let tags = run(
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/tools/hello", server.addr),
        ],
    );
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["1", "copy"]));
}

/// A private containerd with its CRI plugin told that the registry speaks plain HTTP.
struct Containerd {
    child: Child,
    socket: String,
}

impl Containerd {
    fn start(dir: &Path, registry: &str) -> Containerd {
        let hosts = dir.join("certs.d").join(registry);
        std::fs::create_dir_all(&hosts).unwrap();
        std::fs::write(
            hosts.join("hosts.toml"),
            format!("server = \"http://{registry}\"\n[host.\"http://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
        .unwrap();
        let socket = dir.join("containerd.sock").display().to_string();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\n  address = \"{socket}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{certs}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                certs = dir.join("certs.d").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot run containerd (installed by tests/tools/install.sh)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Path::new(&socket).exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: see {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Containerd { child, socket }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_pulls_with_ctr_and_through_cri() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    buildah_push(&server, work.path(), "k8s/app:v1");
    let digest = manifest_digest(&server, "k8s/app", "v1");
    let containerd = Containerd::start(&work.path().join("containerd"), &server.addr);
    let image = format!("{}/k8s/app:v1", server.addr);

    // ctr: containerd's own client.
    run(
        "ctr",
        &[
            "-a",
            &containerd.socket,
            "images",
            "pull",
            "--plain-http",
            &image,
        ],
    );
    let listed = run("ctr", &["-a", &containerd.socket, "images", "ls"]);
    assert!(
        listed.contains(&digest),
        "ctr images ls lacks {digest}:\n{listed}"
    );

    // CRI ImageService.PullImage, as the kubelet calls it.
    let out = run(
        "cri-pull",
        &[
            "-endpoint",
            &format!("unix://{}", containerd.socket),
            "-image",
            &image,
        ],
    );
    let repo_digest = format!("{}/k8s/app@{digest}", server.addr);
    assert!(
        out.lines().any(|l| l == repo_digest),
        "CRI pull reported:\n{out}\nexpected {repo_digest}"
    );
}

/// Logging in with the tools' own flags against a registry with a policy:
/// buildah `--creds`, podman `login`, containerd `ctr --user` (token flow).
#[test]
fn buildah_podman_and_containerd_log_in() {
    use sha2::Digest as _;
    let work = tempfile::tempdir().unwrap();
    let secret = "robot-secret-0c1d2e3f4a5b6c7d";
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "robots:\n- name: robot$ci\n  password_sha256: {}\n\
             rules:\n- repositories: [\"ci/*\"]\n  subjects: [\"robot:robot$ci\"]\n  actions: [pull, push]\n",
            hex::encode(sha2::Sha256::digest(secret.as_bytes()))
        ),
    )
    .unwrap();
    let server = Server::start_with(&["--policy-file", policy.to_str().unwrap()]);
    let creds = format!("robot$ci:{secret}");
    buildah_push_as(&server, work.path(), "ci/app:v1", Some(&creds));
    let image = format!("{}/ci/app:v1", server.addr);

    // podman: a wrong password is refused at login, the right one pulls.
    let flags = storage_flags(&work.path().join("podman"));
    let auth = work.path().join("auth.json").display().to_string();
    let bad = Command::new("podman")
        .args(with_storage(
            &flags,
            &[
                "login",
                "--tls-verify=false",
                "--authfile",
                &auth,
                "-u",
                "robot$ci",
                "-p",
                "wrong",
                &server.addr,
            ],
        ))
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "podman login accepted a wrong password"
    );
    run(
        "podman",
        &with_storage(
            &flags,
            &[
                "login",
                "--tls-verify=false",
                "--authfile",
                &auth,
                "-u",
                "robot$ci",
                "-p",
                secret,
                &server.addr,
            ],
        ),
    );
    run(
        "podman",
        &with_storage(
            &flags,
            &["pull", "--tls-verify=false", "--authfile", &auth, &image],
        ),
    );

    // containerd: anonymous is refused, --user pulls through the token flow.
    let containerd = Containerd::start(&work.path().join("containerd"), &server.addr);
    let anonymous = Command::new("ctr")
        .args([
            "-a",
            &containerd.socket,
            "images",
            "pull",
            "--plain-http",
            &image,
        ])
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "ctr pulled a private image anonymously"
    );
    run(
        "ctr",
        &[
            "-a",
            &containerd.socket,
            "images",
            "pull",
            "--plain-http",
            "--user",
            &creds,
            &image,
        ],
    );
    let out = run(
        "cri-pull",
        &[
            "-endpoint",
            &format!("unix://{}", containerd.socket),
            "-image",
            &image,
            "-username",
            "robot$ci",
            "-password",
            secret,
        ],
    );
    assert!(out.contains("ci/app@sha256:"), "{out}");
}
