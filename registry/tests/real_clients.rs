//! Real clients against a real `berth` process: images built with `umoci` and
//! moved with `skopeo`, a multi-arch index copied with `skopeo copy --all`, and
//! a Singularity-style SIF artifact pushed, pulled, attached to and discovered
//! with the `oras` CLI.
//!
//! The tools are installed by `tests/tools/install.sh` (which `.ci/run`
//! calls): skopeo and umoci from Debian, oras built from the version pinned in
//! `tests/tools/versions.env`. A missing tool fails the test; it never skips.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::Server;
use common::tools::run;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

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

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

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
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "layout blob matches its digest"
        );
        assert_eq!(desc["size"].as_u64(), Some(bytes.len() as u64));
        (digest, bytes)
    }

    /// Writes `bytes` as a blob and tags it `tag` in index.json.
    fn add_tagged(&self, tag: &str, media_type: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
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

#[test]
fn skopeo_round_trips_a_umoci_image() {
    let server = Server::start();
    let tmp = tempdir();
    let work = tmp.path();
    let n = nonce();
    let hello = format!("hello from berth {n}\n").into_bytes();
    let data = noise(300 * 1024, n);
    umoci_image(
        work,
        "layout",
        "v1",
        &[("hello.txt", &hello), ("data/noise.bin", &data)],
        None,
    );
    let layout = Layout(work.join("layout"));
    let (digest, manifest) = layout.manifest("v1");
    let parsed: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    assert_eq!(parsed["layers"].as_array().map(Vec::len), Some(1));

    // push
    let repo = format!("{}/berth-test/umoci", server.addr);
    let dest = format!("docker://{repo}:v1");
    run(
        work,
        "skopeo",
        [
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "oci:layout:v1",
            &dest,
        ],
    );

    // the registry serves the exact manifest bytes, by tag and by digest
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &dest],
    );
    assert_eq!(
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&manifest),
        "manifest by tag differs from the one pushed"
    );
    let by_digest = format!("docker://{repo}@{digest}");
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &by_digest],
    );
    assert_eq!(
        raw, manifest,
        "manifest by digest differs from the one pushed"
    );

    let info = run_json(work, "skopeo", ["inspect", "--tls-verify=false", &dest]);
    assert_eq!(info["Digest"], digest.as_str(), "skopeo inspect: {info}");
    assert_eq!(info["RepoTags"], json!(["v1"]), "skopeo inspect: {info}");
    assert_eq!(info["Architecture"], "amd64", "skopeo inspect: {info}");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info}");

    let tags = run_json(
        work,
        "skopeo",
        [
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{repo}"),
        ],
    );
    assert_eq!(tags["Tags"], json!(["v1"]), "skopeo list-tags: {tags}");

    // pull into a fresh layout: same digest, same blobs, same files
    run(
        work,
        "skopeo",
        ["copy", "--src-tls-verify=false", &dest, "oci:back:v1"],
    );
    let back = Layout(work.join("back"));
    let (back_digest, back_manifest) = back.manifest("v1");
    assert_eq!(back_digest, digest, "pulled manifest digest");
    assert_eq!(back_manifest, manifest);
    let mut blobs = vec![
        parsed["config"]["digest"]
            .as_str()
            .expect("config")
            .to_owned(),
    ];
    for l in parsed["layers"].as_array().expect("layers") {
        blobs.push(l["digest"].as_str().expect("layer digest").to_owned());
    }
    for b in &blobs {
        assert_eq!(back.blob(b), layout.blob(b), "blob {b} round-trips");
    }
    assert_eq!(umoci_read(work, "back", "v1", "hello.txt"), hello);
    assert_eq!(umoci_read(work, "back", "v1", "data/noise.bin"), data);

    // registry to registry into another repository (skopeo tries a
    // cross-repository mount of the blobs)
    let other = format!("docker://{}/berth-test/other/copy:v2", server.addr);
    run(
        work,
        "skopeo",
        [
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &dest,
            &other,
        ],
    );
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &other],
    );
    assert_eq!(raw, manifest, "copied manifest in the second repository");
    run(
        work,
        "skopeo",
        ["copy", "--src-tls-verify=false", &other, "oci:back2:v2"],
    );
    assert_eq!(umoci_read(work, "back2", "v2", "hello.txt"), hello);
}

#[test]
fn skopeo_copies_a_multi_arch_index_with_all() {
    let server = Server::start();
    let tmp = tempdir();
    let work = tmp.path();
    let n = nonce();
    for arch in ["amd64", "arm64"] {
        let content = format!("{arch} {n}\n");
        umoci_image(
            work,
            "layout",
            arch,
            &[("arch.txt", content.as_bytes())],
            Some(arch),
        );
    }
    let layout = Layout(work.join("layout"));
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (digest, bytes) = layout.manifest(arch);
        let m: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
        let config: Value =
            serde_json::from_slice(&layout.blob(m["config"]["digest"].as_str().expect("config")))
                .expect("config JSON");
        assert_eq!(config["architecture"], arch, "umoci config set the arch");
        children.push((arch, digest, bytes));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(arch, digest, bytes)| json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": bytes.len(),
            "platform": { "architecture": arch, "os": "linux" },
        })).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.description": format!("berth test {n}") },
    }))
    .expect("encode index");
    let index_digest = layout.add_tagged("multi", OCI_INDEX, &index);

    let repo = format!("{}/berth-test/multi", server.addr);
    let dest = format!("docker://{repo}:latest");
    run(
        work,
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "oci:layout:multi",
            &dest,
        ],
    );

    // the index, and each child by digest, are served byte for byte
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &dest],
    );
    assert_eq!(
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&index),
        "index by tag differs from the one pushed"
    );
    assert_eq!(sha256_digest(&raw), index_digest);
    for (arch, digest, bytes) in &children {
        let raw = run(
            work,
            "skopeo",
            [
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{repo}@{digest}"),
            ],
        );
        assert_eq!(&raw, bytes, "{arch} manifest by digest");
        // platform resolution through the index
        let info = run_json(
            work,
            "skopeo",
            [
                "inspect",
                "--tls-verify=false",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                &dest,
            ],
        );
        // (skopeo reports the digest of the index it resolved through)
        assert_eq!(info["Digest"], index_digest.as_str(), "{arch}: {info}");
        assert_eq!(info["Architecture"], *arch, "{arch} via the index: {info}");
        let m: Value = serde_json::from_slice(bytes).expect("manifest JSON");
        let layers: Vec<&Value> = m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| &l["digest"])
            .collect();
        assert_eq!(info["Layers"], json!(layers), "{arch} layers via the index");
    }

    // pull everything back
    run(
        work,
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &dest,
            "oci:back:multi",
        ],
    );
    let back = Layout(work.join("back"));
    let desc = back.descriptor("multi");
    assert_eq!(desc["digest"], index_digest.as_str(), "pulled index digest");
    assert_eq!(desc["mediaType"], OCI_INDEX);
    assert_eq!(back.blob(&index_digest), index);
    for (arch, digest, bytes) in &children {
        assert!(back.has_blob(digest), "{arch} manifest pulled with --all");
        assert_eq!(&back.blob(digest), bytes);
    }

    // and one platform on its own, down to its files
    run(
        work,
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            "--override-os",
            "linux",
            "--override-arch",
            "arm64",
            &dest,
            "oci:arm:only",
        ],
    );
    let (arm_digest, _) = Layout(work.join("arm")).manifest("only");
    assert_eq!(arm_digest, children[1].1, "arm64 selected from the index");
    assert_eq!(
        umoci_read(work, "arm", "only", "arch.txt"),
        format!("arm64 {n}\n").into_bytes()
    );
}

#[test]
fn oras_pushes_pulls_attaches_and_discovers_a_sif_artifact() {
    let server = Server::start();
    let tmp = tempdir();
    let work = tmp.path();
    let n = nonce();
    let mut sif = b"SIF_MAGIC\0".to_vec();
    sif.extend(noise(1024 * 1024 + 7, n));
    std::fs::write(work.join("image.sif"), &sif).expect("write sif");
    std::fs::write(work.join("cfg.json"), b"{}").expect("write config");
    let reference = format!("{}/sif/img:1.0", server.addr);

    // push, as `singularity push oras://` does: SIF config + one SIF layer
    let pushed = run_json(
        work,
        "oras",
        [
            "push",
            "--plain-http",
            "--format",
            "json",
            &reference,
            "--config",
            &format!("cfg.json:{SIF_CONFIG}"),
            &format!("image.sif:{SIF_LAYER}"),
        ],
    );
    let digest = pushed["digest"]
        .as_str()
        .expect("oras push digest")
        .to_owned();

    let manifest = run(
        work,
        "oras",
        ["manifest", "fetch", "--plain-http", &reference],
    );
    assert_eq!(
        sha256_digest(&manifest),
        digest,
        "served manifest bytes hash to the pushed digest"
    );
    let m: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    assert_eq!(m["config"]["mediaType"], SIF_CONFIG, "{m}");
    assert_eq!(m["config"]["digest"], sha256_digest(b"{}").as_str(), "{m}");
    assert_eq!(m["layers"][0]["mediaType"], SIF_LAYER, "{m}");
    assert_eq!(
        m["layers"][0]["digest"],
        sha256_digest(&sif).as_str(),
        "{m}"
    );
    assert_eq!(m["layers"][0]["size"], sif.len(), "{m}");

    // pull it back
    let out = work.join("pulled");
    run(
        work,
        "oras",
        ["pull", "--plain-http", "-o", s(&out), &reference],
    );
    let got = std::fs::read(out.join("image.sif")).expect("pulled image.sif");
    assert!(
        got == sif,
        "pulled SIF differs from the pushed one ({} vs {} bytes)",
        got.len(),
        sif.len()
    );

    // attach a signature-like artifact through the referrers API
    let sig_type = "application/vnd.berth.test.signature";
    std::fs::write(work.join("sig.txt"), format!("signed {n}\n")).expect("write sig");
    let attached = run_json(
        work,
        "oras",
        [
            "attach",
            "--plain-http",
            "--distribution-spec",
            "v1.1-referrers-api",
            "--format",
            "json",
            "--artifact-type",
            sig_type,
            &reference,
            "sig.txt:text/plain",
        ],
    );
    let sig_digest = attached["digest"]
        .as_str()
        .expect("attach digest")
        .to_owned();

    let discover = |extra: &[&str]| -> Value {
        let mut args = vec![
            "discover",
            "--plain-http",
            "--distribution-spec",
            "v1.1-referrers-api",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        args.push(&reference);
        run_json(work, "oras", args)
    };
    let found = discover(&[]);
    assert_eq!(
        found["digest"],
        digest.as_str(),
        "discover subject: {found}"
    );
    let referrers = found["referrers"].as_array().expect("referrers array");
    let sig = referrers
        .iter()
        .find(|r| r["digest"] == sig_digest.as_str())
        .unwrap_or_else(|| panic!("attached {sig_digest} not among referrers: {found}"));
    assert_eq!(sig["artifactType"], sig_type, "{found}");
    assert_eq!(referrers.len(), 1, "{found}");

    // artifactType filtering
    let filtered = discover(&["--artifact-type", sig_type]);
    assert_eq!(
        filtered["referrers"].as_array().map(Vec::len),
        Some(1),
        "{filtered}"
    );
    let none = discover(&["--artifact-type", "application/vnd.berth.test.nothing"]);
    assert_eq!(
        none["referrers"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{none}"
    );

    // the referrer's content, by digest
    let sig_ref = format!("{}/sif/img@{sig_digest}", server.addr);
    let sig_manifest: Value = serde_json::from_slice(&run(
        work,
        "oras",
        ["manifest", "fetch", "--plain-http", &sig_ref],
    ))
    .expect("referrer manifest JSON");
    assert_eq!(
        sig_manifest["subject"]["digest"],
        digest.as_str(),
        "{sig_manifest}"
    );
    let sig_out = work.join("sig-pulled");
    run(
        work,
        "oras",
        ["pull", "--plain-http", "-o", s(&sig_out), &sig_ref],
    );
    assert_eq!(
        std::fs::read_to_string(sig_out.join("sig.txt")).expect("pulled sig.txt"),
        format!("signed {n}\n")
    );

    // oras's default mode decides from the registry (OCI-Subject header on the
    // manifest PUT, else a probe of the referrers API) whether to fall back to
    // the `sha256-<hex>` tag scheme; a registry serving the referrers API must
    // never get that tag.
    std::fs::write(work.join("sbom.json"), format!("{{\"sbom\":{n}}}")).expect("write sbom");
    let sbom = run_json(
        work,
        "oras",
        [
            "attach",
            "--plain-http",
            "--format",
            "json",
            "--artifact-type",
            "application/vnd.berth.test.sbom",
            &reference,
            "sbom.json:application/json",
        ],
    );
    let tags = String::from_utf8(run(
        work,
        "oras",
        [
            "repo",
            "tags",
            "--plain-http",
            &format!("{}/sif/img", server.addr),
        ],
    ))
    .expect("utf-8 tags");
    let tags: Vec<&str> = tags.lines().collect();
    assert_eq!(tags, ["1.0"], "no referrers fallback tag expected");
    let found = discover(&[]);
    let digests: Vec<&str> = found["referrers"]
        .as_array()
        .expect("referrers")
        .iter()
        .filter_map(|r| r["digest"].as_str())
        .collect();
    assert!(digests.contains(&sig_digest.as_str()), "{found}");
    assert!(
        digests.contains(&sbom["digest"].as_str().expect("sbom digest")),
        "{found}"
    );
}
