//! Apptainer and Singularity against a real `berth`: SIF over `oras://` in
//! every shape clients have pushed, `library://` through the library API
//! over the same storage (and each pulled by the other), SIF headers read
//! at push and shown (API, `berth sif`, `berth ls`) as `siftool` shows
//! them, and access control for both protocols.
//!
//! There is no Apptainer binary here; `apptainer-client`
//! (tests/tools/apptainer-client, built by tests/tools/install.sh) does
//! what Apptainer does with the code Apptainer uses: container-library-client
//! for `library://`, go-containerregistry for `oras://`, the sif module for
//! SIF files (one signed with a fresh PGP key, as `apptainer sign` does).
//! Root file systems are real squashfs images (`mksquashfs`); `siftool`
//! (Debian's) is the reference for what a SIF's header says. A missing
//! tool fails the test; it never skips.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::tools::{run, run_unchecked};
use common::{Server, sha256};
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIF_CONFIG: &str = "application/vnd.sylabs.sif.config.v1+json";
const SIF_LAYER: &str = "application/vnd.sylabs.sif.layer.v1.sif";

/// A value that differs between runs and tests.
fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{t}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-apptainer-")
        .tempdir()
        .expect("create tempdir")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs apptainer-client; its JSON answer.
fn apptainer<I, S>(cwd: &Path, args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = run(cwd, "apptainer-client", args);
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "apptainer-client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// Runs apptainer-client expecting it to fail; its error message.
fn apptainer_fails<I, S>(cwd: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let ran = run_unchecked(cwd, "apptainer-client", args, &[]);
    let stderr = String::from_utf8_lossy(&ran.stderr).into_owned();
    assert!(
        ran.status.is_some_and(|s| !s.success()),
        "`{}` should have failed; stdout: {} stderr: {stderr}",
        ran.shown,
        String::from_utf8_lossy(&ran.stdout)
    );
    stderr
}

/// A SIF made as `apptainer build` makes one, with a real squashfs root
/// file system holding a file unique to this call.
struct Sif {
    path: PathBuf,
    digest: String,
    size: u64,
    arch: String,
    /// The signing key's fingerprint, when signed.
    fingerprint: Option<String>,
}

impl Sif {
    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read SIF")
    }
}

fn make_sif(dir: &Path, name: &str, arch: &str, signed: bool) -> Sif {
    let rootfs = dir.join(format!("{name}-rootfs"));
    std::fs::create_dir_all(rootfs.join("etc")).expect("mkdir rootfs");
    std::fs::write(rootfs.join("etc/berth-test"), nonce()).expect("write rootfs file");
    let squashfs = dir.join(format!("{name}.sqfs"));
    run(
        dir,
        "mksquashfs",
        [
            s(&rootfs),
            s(&squashfs),
            "-noappend",
            "-quiet",
            "-no-progress",
        ],
    );
    let path = dir.join(format!("{name}.sif"));
    let mut args = vec![
        "make-sif".to_string(),
        "-arch".into(),
        arch.into(),
        "-partition".into(),
        s(&squashfs).into(),
    ];
    if signed {
        args.push("-sign".into());
    }
    args.push(s(&path).into());
    let made = apptainer(dir, &args);
    let bytes = std::fs::read(&path).expect("read made SIF");
    assert_eq!(made["digest"], sha256(&bytes).as_str());
    Sif {
        digest: sha256(&bytes),
        size: bytes.len() as u64,
        arch: arch.to_string(),
        fingerprint: made["fingerprint"].as_str().map(str::to_string),
        path,
    }
}

/// An HTTP answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        json(&self.body)
    }
}

/// `curl`: a GET of `url` with `headers` ("Name: value").
fn http_get(url: &str, headers: &[&str]) -> Answer {
    let dir = tempdir();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let mut args = vec!["-sS", "-D", s(&head), "-o", s(&body)];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    run(dir.path(), "curl", &args);
    let head = std::fs::read_to_string(&head).expect("headers");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The manifest `name:reference` as /v2 serves it: (content type, bytes).
fn manifest(server: &Server, name: &str, reference: &str) -> (String, Vec<u8>) {
    let a = http_get(
        &server.url(&format!("/v2/{name}/manifests/{reference}")),
        &[&format!("Accept: {OCI_MANIFEST}, {OCI_INDEX}")],
    );
    assert_eq!(
        a.status,
        200,
        "{name}:{reference}: {}",
        String::from_utf8_lossy(&a.body)
    );
    (
        a.header("content-type").unwrap_or_default().to_string(),
        a.body,
    )
}

/// The blob `name@digest` as /v2 serves it.
fn blob(server: &Server, name: &str, digest: &str) -> Vec<u8> {
    let a = http_get(&server.url(&format!("/v2/{name}/blobs/{digest}")), &[]);
    assert_eq!(a.status, 200, "{name}@{digest}");
    a.body
}

/// What Berth's SIF API says of `name:reference`.
fn sif_api(server: &Server, name: &str, reference: &str) -> Value {
    let a = http_get(&server.url(&format!("/v2/{name}/sif/{reference}")), &[]);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a.json()
}

mod access;
mod library;
mod oras_shapes;
mod sif_metadata;
