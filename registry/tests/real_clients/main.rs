//! Real clients against a real `berth` process: images built with `umoci` and
//! moved with `skopeo`, a multi-arch index copied with `skopeo copy --all`, and
//! a Singularity-style SIF artifact pushed, pulled, attached to and discovered
//! with the `oras` CLI.
//!
//! The tools are installed by `tests/tools/install.sh` (which `.ci/run`
//! calls): skopeo and umoci from Debian, oras built from the version pinned in
//! `tests/tools/versions.env`. A missing tool fails the test; it never skips.

#[path = "../common/mod.rs"]
mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::tools::run;
use common::{Server, sha256};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

const REF_NAME: &str = "org.opencontainers.image.ref.name";

const SIF_CONFIG: &str = "application/vnd.sylabs.sif.config.v1+json";

const SIF_LAYER: &str = "application/vnd.sylabs.sif.layer.v1.sif";

fn run_json<I, S>(cwd: &Path, name: &str, args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run(cwd, name, args);
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{name} printed invalid JSON ({e}):\n{}",
            String::from_utf8_lossy(&out)
        )
    })
}

// ---------------------------------------------------------------- helpers

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A value that differs between runs, so that content is never already there.
fn nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-real-clients-")
        .tempdir()
        .expect("create tempdir")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// An OCI image layout on disk (as written by umoci and skopeo).
struct Layout(PathBuf);

impl Layout {
    fn index(&self) -> Value {
        let text = std::fs::read(self.0.join("index.json")).expect("read index.json");
        serde_json::from_slice(&text).expect("index.json is JSON")
    }

    /// The descriptor that index.json lists under the ref name `tag`.
    fn descriptor(&self, tag: &str) -> Value {
        let index = self.index();
        index["manifests"]
            .as_array()
            .expect("index.json has manifests")
            .iter()
            .find(|d| d["annotations"][REF_NAME] == tag)
            .unwrap_or_else(|| panic!("no {tag:?} in {}: {index}", self.0.display()))
            .clone()
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').expect("digest has an algorithm");
        self.0.join("blobs").join(alg).join(hex)
    }

    fn blob(&self, digest: &str) -> Vec<u8> {
        let p = self.blob_path(digest);
        std::fs::read(&p).unwrap_or_else(|e| panic!("read blob {}: {e}", p.display()))
    }

    fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// (digest, exact bytes) of the manifest tagged `tag`; checks they agree.
    fn manifest(&self, tag: &str) -> (String, Vec<u8>) {
        let desc = self.descriptor(tag);
        let digest = desc["digest"].as_str().expect("digest").to_owned();
        let bytes = self.blob(&digest);
        assert_eq!(sha256(&bytes), digest, "layout blob matches its digest");
        assert_eq!(desc["size"].as_u64(), Some(bytes.len() as u64));
        (digest, bytes)
    }

    /// Writes `bytes` as a blob and tags it `tag` in index.json.
    fn add_tagged(&self, tag: &str, media_type: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        std::fs::write(self.blob_path(&digest), bytes).expect("write blob");
        let mut index = self.index();
        index["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(json!({
                "mediaType": media_type,
                "digest": digest,
                "size": bytes.len(),
                "annotations": { REF_NAME: tag },
            }));
        std::fs::write(
            self.0.join("index.json"),
            serde_json::to_vec(&index).expect("encode index.json"),
        )
        .expect("write index.json");
        digest
    }
}

/// Builds `layout:tag` with umoci: a fresh image plus `files` (path relative
/// to the root filesystem, content), optionally for another architecture.
fn umoci_image(work: &Path, layout: &str, tag: &str, files: &[(&str, &[u8])], arch: Option<&str>) {
    if !work.join(layout).join("index.json").exists() {
        run(work, "umoci", ["init", "--layout", layout]);
    }
    let image = format!("{layout}:{tag}");
    run(work, "umoci", ["new", "--image", &image]);
    let bundle = work.join(format!("bundle-{tag}"));
    run(
        work,
        "umoci",
        ["unpack", "--rootless", "--image", &image, s(&bundle)],
    );
    for (path, content) in files {
        let p = bundle.join("rootfs").join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write file into rootfs");
    }
    run(work, "umoci", ["repack", "--image", &image, s(&bundle)]);
    if let Some(arch) = arch {
        run(
            work,
            "umoci",
            [
                "config",
                "--image",
                &image,
                "--architecture",
                arch,
                "--os",
                "linux",
            ],
        );
    }
    std::fs::remove_dir_all(&bundle).expect("remove bundle");
}

/// Unpacks `layout:tag` with umoci (once) and returns the content of `file`.
fn umoci_read(work: &Path, layout: &str, tag: &str, file: &str) -> Vec<u8> {
    let bundle = work.join(format!("unpacked-{layout}-{tag}"));
    if !bundle.exists() {
        run(
            work,
            "umoci",
            [
                "unpack",
                "--rootless",
                "--image",
                &format!("{layout}:{tag}"),
                s(&bundle),
            ],
        );
    }
    let p = bundle.join("rootfs").join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{} in the pulled image: {e}", p.display()))
}

// ------------------------------------------------------------------ tests

mod oras;
mod skopeo;
