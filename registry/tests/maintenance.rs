//! Maintenance from the outside: `berth gc` and `berth retention` run as
//! separate processes against a serving registry (as the operator's
//! CronJobs do), quotas and immutable tags refused at push time with DENIED,
//! `berth usage`, and the storage on disk matching the metadata after gc.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A client of one registry.
#[derive(Clone)]
struct Reg {
    base: String,
    http: Client,
}

/// An image as pushed: its manifest and every blob it references.
#[derive(Clone, Debug)]
struct Image {
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

impl Reg {
    fn new(server: &Server) -> Reg {
        Reg {
            base: server.base.clone(),
            http: Client::new(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    async fn status(&self, method: Method, path: &str) -> StatusCode {
        self.req(method, path).send().await.unwrap().status()
    }

    /// Uploads a blob unless the repository has it (as real clients do:
    /// HEAD first). Err carries the registry's answer.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> Result<String, String> {
        let digest = sha256(data);
        let head = self
            .status(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
            .await;
        if head == StatusCode::OK {
            return Ok(digest);
        }
        let r = self.post_blob(repo, data).await;
        if r.status() != StatusCode::CREATED {
            return Err(format!(
                "{} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
        }
        Ok(digest)
    }

    /// A single-POST monolithic upload, whatever the answer.
    async fn post_blob(&self, repo: &str, data: &[u8]) -> reqwest::Response {
        self.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data)),
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<(), (StatusCode, String)> {
        let r = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if r.status() != StatusCode::CREATED {
            return Err((r.status(), r.text().await.unwrap_or_default()));
        }
        Ok(())
    }

    /// Pushes config + layers and an image manifest under `reference`.
    async fn push_image(
        &self,
        repo: &str,
        reference: &str,
        layers: &[&[u8]],
        subject: Option<&str>,
    ) -> Result<Image, String> {
        let config = format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"layers\":{}}}",
            layers.len()
        );
        let mut blobs = vec![(
            self.push_blob(repo, config.as_bytes()).await?,
            config.clone().into_bytes(),
        )];
        for layer in layers {
            blobs.push((self.push_blob(repo, layer).await?, layer.to_vec()));
        }
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0].0, "size": config.len()},
            "layers": blobs[1..].iter().map(|(d, b)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": b.len()
            })).collect::<Vec<_>>(),
        });
        if let Some(subject) = subject {
            manifest["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": 1});
            manifest["artifactType"] = json!("application/vnd.example.sbom");
        }
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let digest = sha256(&manifest);
        self.put_manifest(repo, reference, OCI_MANIFEST, &manifest)
            .await
            .map_err(|(s, m)| format!("{s} {m}"))?;
        Ok(Image {
            manifest,
            digest,
            blobs,
        })
    }

    /// Pulls `reference` and every blob of it, checking bytes and digests.
    async fn pull_verified(&self, repo: &str, reference: &str, image: &Image) {
        let r = self
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{repo}:{reference}");
        let body = r.bytes().await.unwrap();
        assert!(
            body[..] == image.manifest[..],
            "{repo}:{reference} manifest bytes differ"
        );
        for (digest, data) in &image.blobs {
            let r = self
                .req(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "{repo}:{reference} blob {digest}"
            );
            let got = r.bytes().await.unwrap();
            assert_eq!(
                sha256(&got),
                *digest,
                "{repo}:{reference} blob {digest} corrupt"
            );
            assert_eq!(got.len(), data.len());
        }
    }
}

/// Runs a `berth` maintenance subcommand on a data directory; returns stdout.
fn berth(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("BERTH_LOG", "warn")
        .output()
        .expect("run berth");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn usage(data_dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["usage", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&berth(data_dir, &args)).expect("usage JSON")
}

/// Every blob file under the storage directory: digest -> size.
fn blobs_on_disk(data_dir: &Path) -> BTreeMap<String, u64> {
    let mut found = BTreeMap::new();
    let root = data_dir.join("storage/blobs");
    let Ok(algs) = std::fs::read_dir(&root) else {
        return found;
    };
    for alg in algs.flatten() {
        for prefix in std::fs::read_dir(alg.path()).unwrap().flatten() {
            for file in std::fs::read_dir(prefix.path()).unwrap().flatten() {
                let name = format!(
                    "{}:{}",
                    alg.file_name().to_string_lossy(),
                    file.file_name().to_string_lossy()
                );
                found.insert(name, file.metadata().unwrap().len());
            }
        }
    }
    found
}

/// The metadata's count and bytes of stored blobs equal what is on disk.
fn assert_storage_matches_metadata(data_dir: &Path) -> BTreeMap<String, u64> {
    let disk = blobs_on_disk(data_dir);
    let u = usage(data_dir, &[]);
    assert_eq!(
        u["stored_blobs"].as_u64().unwrap(),
        disk.len() as u64,
        "{u}\n{disk:?}"
    );
    assert_eq!(
        u["stored_bytes"].as_u64().unwrap(),
        disk.values().sum::<u64>(),
        "{u}"
    );
    disk
}

fn layer(name: &str, size: usize) -> Vec<u8> {
    let mut data = name.as_bytes().to_vec();
    data.resize(size, b'.');
    data
}

#[tokio::test]
async fn gc_removes_exactly_what_nothing_reaches() {
    let server = Server::start();
    let reg = Reg::new(&server);
    let dir = server.data_dir.clone();
    let shared = layer("shared", 3000);
    let (a1, a2, b1, c1, orphan) = (
        layer("a1", 1000),
        layer("a2", 1000),
        layer("b1", 2000),
        layer("c1", 500),
        layer("orphan", 4000),
    );

    // app:v1 = A (kept); app:v2 = B then moved to C (B untagged, goes).
    let a = reg
        .push_image("app", "v1", &[&shared, &a1, &a2], None)
        .await
        .unwrap();
    let b = reg
        .push_image("app", "v2", &[&shared, &b1], None)
        .await
        .unwrap();
    let c = reg.push_image("app", "v2", &[&c1], None).await.unwrap();
    // A referrer of A stays; a referrer of B goes with it.
    let sbom_a = push_by_digest(&reg, "app", &[b"sbom of a"], Some(&a.digest)).await;
    let sbom_b = push_by_digest(&reg, "app", &[b"sbom of b"], Some(&b.digest)).await;
    // An index reaching a child pushed by digest only: both stay.
    let child = push_by_digest(&reg, "app", &[b"arm64 layer"], None).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.manifest.len(),
                       "platform": {"architecture": "arm64", "os": "linux"}}]
    }))
    .unwrap();
    reg.put_manifest("app", "multi", OCI_INDEX, &index)
        .await
        .unwrap();
    // A blob no manifest references, and a repository that only ever had one.
    let orphan_digest = reg.push_blob("app", &orphan).await.unwrap();
    reg.push_blob("scratch/only-blobs", b"lonely blob")
        .await
        .unwrap();

    let before = assert_storage_matches_metadata(&dir);

    // Default grace (1 h): everything is young, nothing goes.
    let out = berth(&dir, &["gc"]);
    assert!(
        out.contains("deleted: 0 untagged manifests, 0 blob links, 0 empty repositories, 0 blobs"),
        "{out}"
    );
    assert_eq!(blobs_on_disk(&dir), before);

    // Dry run with no grace: reports, changes nothing.
    let out = berth(&dir, &["gc", "--grace-seconds", "0", "--dry-run"]);
    assert!(out.contains("would delete: 2 untagged manifests"), "{out}");
    assert_eq!(blobs_on_disk(&dir), before);
    assert_eq!(
        reg.status(Method::HEAD, &format!("/v2/app/manifests/{}", b.digest))
            .await,
        StatusCode::OK
    );

    // The real run, while the server keeps serving.
    let out = berth(&dir, &["gc", "--grace-seconds", "0"]);
    assert!(out.contains("deleted: 2 untagged manifests"), "{out}");
    assert!(out.contains("1 empty repositories"), "{out}");

    for (reference, image) in [
        ("v1", &a),
        ("v2", &c),
        (&sbom_a.digest[..], &sbom_a),
        (&child.digest[..], &child),
    ] {
        reg.pull_verified("app", reference, image).await;
    }
    assert_eq!(
        reg.status(Method::GET, "/v2/app/manifests/multi").await,
        StatusCode::OK
    );
    for gone in [&b.digest, &sbom_b.digest] {
        assert_eq!(
            reg.status(Method::GET, &format!("/v2/app/manifests/{gone}"))
                .await,
            StatusCode::NOT_FOUND
        );
    }
    // Referrers of A still list its SBOM.
    let referrers: Value = reg
        .req(Method::GET, &format!("/v2/app/referrers/{}", a.digest))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], sbom_a.digest.as_str());

    // On disk: exactly the blobs the kept manifests reference.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for image in [&a, &c, &sbom_a, &child] {
        for (d, data) in &image.blobs {
            expected.insert(d.clone(), data.len() as u64);
        }
    }
    let after = assert_storage_matches_metadata(&dir);
    assert_eq!(after, expected);
    assert!(!after.contains_key(&orphan_digest));
    assert!(!after.contains_key(&sha256(&b1)));
    assert!(after.contains_key(&sha256(&shared)));
    let catalog: Value = reg
        .req(Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["repositories"], json!(["app"]));

    // A second gc finds nothing.
    let out = berth(&dir, &["gc", "--grace-seconds", "0"]);
    assert!(
        out.contains("deleted: 0 untagged manifests, 0 blob links, 0 empty repositories, 0 blobs"),
        "{out}"
    );
}

/// Pushes an image manifest by its own digest.
async fn push_by_digest(reg: &Reg, repo: &str, layers: &[&[u8]], subject: Option<&str>) -> Image {
    // Push under a throwaway tag first to learn the bytes, then by digest
    // and drop the tag: the manifest is left reachable only by digest.
    let image = reg
        .push_image(repo, "tmp-by-digest", layers, subject)
        .await
        .unwrap();
    reg.put_manifest(repo, &image.digest, OCI_MANIFEST, &image.manifest)
        .await
        .unwrap();
    assert_eq!(
        reg.status(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/tmp-by-digest")
        )
        .await,
        StatusCode::ACCEPTED
    );
    image
}

/// Pushes, pulls and tag deletions run while `berth gc` runs in a loop (as
/// separate processes, with a 1 s grace period). Every push that was
/// acknowledged must pull completely afterwards; refused pushes must have
/// been refused with a clear error; and after a final gc the store holds
/// exactly the blobs the remaining tags reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_in_a_loop_while_clients_push_and_pull() {
    let server = Server::start();
    let reg = Reg::new(&server);
    let dir = server.data_dir.clone();
    let stop = Arc::new(AtomicBool::new(false));

    let gc_loop = {
        let dir = dir.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) || runs < 3 {
                berth(&dir, &["gc", "--grace-seconds", "1"]);
                runs += 1;
            }
            runs
        })
    };

    let mut workers = Vec::new();
    for w in 0..4 {
        let reg = reg.clone();
        workers.push(tokio::spawn(async move {
            let repo = format!("load/w{}", w % 2);
            // tag -> image, for tags this worker still holds.
            let mut live: BTreeMap<String, Image> = BTreeMap::new();
            let mut refused = 0;
            for i in 0..40 {
                let shared = layer(&format!("shared-{}", i % 3), 2048);
                let unique = layer(&format!("w{w}-i{i}"), 1024 + i);
                let tag = format!("w{w}-{i}");
                match reg.push_image(&repo, &tag, &[&shared, &unique], None).await {
                    Ok(image) => {
                        live.insert(tag, image);
                    }
                    Err(e) => {
                        // Only the errors a racing gc may cause, never a 500.
                        assert!(
                            e.contains("MANIFEST_BLOB_UNKNOWN") || e.contains("503"),
                            "push refused with an unexpected error: {e}"
                        );
                        refused += 1;
                    }
                }
                // Untag every third image so its blobs become garbage.
                if i % 3 == 2
                    && let Some(old) = live.keys().next().cloned()
                {
                    assert_eq!(
                        reg.status(Method::DELETE, &format!("/v2/{repo}/manifests/{old}"))
                            .await,
                        StatusCode::ACCEPTED
                    );
                    live.remove(&old);
                }
                // Pull something still tagged.
                if let Some((tag, image)) = live.iter().next() {
                    reg.pull_verified(&repo, tag, image).await;
                }
            }
            (repo, live, refused)
        }));
    }
    let mut live_all = Vec::new();
    let mut refused = 0;
    for w in workers {
        let (repo, live, r) = w.await.unwrap();
        refused += r;
        live_all.push((repo, live));
    }
    stop.store(true, Ordering::Relaxed);
    let runs = gc_loop.await.unwrap();
    assert!(runs >= 3);
    eprintln!("gc ran {runs} times; {refused} pushes refused during races");

    // Every acknowledged, still-tagged push pulls completely.
    let mut expected = BTreeMap::new();
    for (repo, live) in &live_all {
        assert!(!live.is_empty());
        for (tag, image) in live {
            reg.pull_verified(repo, tag, image).await;
            for (d, data) in &image.blobs {
                expected.insert(d.clone(), data.len() as u64);
            }
        }
    }
    // Past the grace period, a final gc leaves exactly what the tags reference.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    berth(&dir, &["gc", "--grace-seconds", "1"]);
    assert_eq!(assert_storage_matches_metadata(&dir), expected);
}

fn write_policy(dir: &Path, repositories: &str) -> String {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "rules:\n  - repositories: [\"**\"]\n    subjects: [anonymous]\n    actions: [pull, push, delete]\n{repositories}"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn quotas_refuse_pushes_past_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write_policy(
        tmp.path(),
        "repositories:\n  - name: q/*\n    quota_bytes: 10000\n  - name: small\n    quota_bytes: 3000\n",
    );
    let server = Server::start_with(&["--policy-file", &policy]);
    let reg = Reg::new(&server);

    let big = layer("big", 6000);
    reg.push_blob("q/a", &big).await.unwrap();
    // The same blob again in the same repository counts once.
    let r = reg.post_blob("q/a", &big).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Another 6000 bytes under q/* passes 10000: DENIED, with the numbers.
    let other = layer("other", 6000);
    let r = reg.post_blob("q/b", &other).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("q/*") && message.contains("10000") && message.contains("6000"),
        "{message}"
    );
    // Nothing of it is served.
    assert_eq!(
        reg.status(Method::HEAD, &format!("/v2/q/b/blobs/{}", sha256(&other)))
            .await,
        StatusCode::NOT_FOUND
    );
    // A chunked upload is refused the same way at its end.
    let r = reg
        .req(Method::POST, "/v2/q/b/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = reg
        .http
        .patch(format!("{}{}", reg.base, location))
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = reg
        .http
        .put(format!(
            "{}{}?digest={}",
            reg.base,
            location,
            sha256(&other)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Mounting the big blob into q/b would count it a second time.
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/q/b/blobs/uploads/?mount={}&from=q/a", sha256(&big)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Small blobs still fit, and manifests count too.
    reg.push_image("q/b", "v1", &[b"tiny layer"], None)
        .await
        .unwrap();
    // A per-repository quota.
    let err = reg
        .push_image("small", "v1", &[&layer("s", 3500)], None)
        .await
        .unwrap_err();
    assert!(
        err.contains("403") && err.contains("DENIED") && err.contains("`small`"),
        "{err}"
    );

    let u = usage(&server.data_dir, &["--policy-file", &policy]);
    let q = u["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["pattern"] == "q/*")
        .unwrap();
    assert_eq!(q["limit_bytes"], 10000);
    let used = q["used_bytes"].as_u64().unwrap();
    assert!((6000..10000).contains(&used), "{u}");
    let repos: u64 = u["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("q/"))
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(repos, used);
}

#[tokio::test]
async fn immutable_tags_cannot_move_or_go() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write_policy(
        tmp.path(),
        "repositories:\n  - name: rel/*\n    immutable_tags: [\"v*\"]\n",
    );
    let server = Server::start_with(&["--policy-file", &policy]);
    let reg = Reg::new(&server);

    let one = reg
        .push_image("rel/app", "v1.0", &[b"one"], None)
        .await
        .unwrap();
    // Same digest again: fine.
    reg.put_manifest("rel/app", "v1.0", OCI_MANIFEST, &one.manifest)
        .await
        .unwrap();
    // Another manifest under v1.0: DENIED, and v1.0 still points at one.
    let err = reg
        .push_image("rel/app", "v1.0", &[b"two"], None)
        .await
        .unwrap_err();
    assert!(
        err.contains("403") && err.contains("DENIED") && err.contains("immutable"),
        "{err}"
    );
    reg.pull_verified("rel/app", "v1.0", &one).await;
    // Not deletable by tag, nor by deleting its manifest.
    for reference in ["v1.0", one.digest.as_str()] {
        let r = reg
            .req(
                Method::DELETE,
                &format!("/v2/rel/app/manifests/{reference}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED");
    }
    reg.pull_verified("rel/app", "v1.0", &one).await;
    // Other tags move freely, also through `?tag=` on a digest push.
    reg.push_image("rel/app", "latest", &[b"one"], None)
        .await
        .unwrap();
    reg.push_image("rel/app", "latest", &[b"two"], None)
        .await
        .unwrap();
    let three = reg
        .push_image("rel/app", "tmp", &[b"three"], None)
        .await
        .unwrap();
    let r = reg
        .put_manifest(
            "rel/app",
            &format!("{}?tag=v2&tag=v1.0", three.digest),
            OCI_MANIFEST,
            &three.manifest,
        )
        .await;
    assert_eq!(r.unwrap_err().0, StatusCode::FORBIDDEN);
    reg.pull_verified("rel/app", "v1.0", &one).await;
    // Outside rel/*, v* tags are ordinary.
    reg.push_image("dev/app", "v1.0", &[b"one"], None)
        .await
        .unwrap();
    reg.push_image("dev/app", "v1.0", &[b"two"], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn retention_on_a_repository_with_hundreds_of_tags() {
    let server = Server::start();
    let reg = Reg::new(&server);
    let dir = server.data_dir.clone();

    // 300 builds, 5 releases and `latest`, pushed in order (distinct manifests).
    let mut order = Vec::new();
    for i in 0..300 {
        let tag = if i % 60 == 0 {
            format!("release-{}", i / 60)
        } else {
            format!("build-{i:03}")
        };
        reg.push_image("ci/app", &tag, &[format!("build {i}").as_bytes()], None)
            .await
            .unwrap();
        order.push(tag);
        // Push times are kept in milliseconds: keep them distinct.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    reg.push_image("ci/app", "latest", &[b"build 299"], None)
        .await
        .unwrap();
    let tags_before = list_tags(&reg, "ci/app").await;
    assert_eq!(tags_before.len(), 301);
    // Pulled before retention runs: the server's manifest cache holds them.
    let doomed = reg
        .req(Method::GET, "/v2/ci/app/manifests/build-001")
        .send()
        .await
        .unwrap();
    assert_eq!(doomed.status(), StatusCode::OK);
    let doomed_digest = doomed.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    for _ in 0..2 {
        for path in [
            "/v2/ci/app/manifests/build-001".to_string(),
            format!("/v2/ci/app/manifests/{doomed_digest}"),
            "/v2/ci/app/manifests/build-299".to_string(),
        ] {
            assert_eq!(reg.status(Method::GET, &path).await, StatusCode::OK);
        }
    }

    let args = [
        "retention",
        "--repository",
        "ci/*",
        "--keep-last",
        "20",
        "--only-tags",
        "build-*",
        "--only-tags",
        "release-*",
        "--protect-tags",
        "release-*",
        "--delete-untagged",
        "--grace-seconds",
        "0",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = berth(&dir, &dry);
    assert!(
        out.contains("would delete: 275 tags, 275 untagged manifests in 1 repositories"),
        "{out}"
    );
    assert_eq!(list_tags(&reg, "ci/app").await, tags_before);

    let out = berth(&dir, &args);
    assert!(
        out.contains("deleted: 275 tags, 275 untagged manifests"),
        "{out}"
    );
    // Kept: the 20 newest builds, every release, latest (not a candidate).
    let builds: Vec<&String> = order.iter().filter(|t| t.starts_with("build-")).collect();
    let mut expected: BTreeSet<String> = builds[builds.len() - 20..]
        .iter()
        .map(|t| t.to_string())
        .collect();
    expected.extend(order.iter().filter(|t| t.starts_with("release-")).cloned());
    expected.insert("latest".into());
    let after: BTreeSet<String> = list_tags(&reg, "ci/app").await.into_iter().collect();
    assert_eq!(after, expected);
    // Another process deleted them: the server must not serve them from its
    // cache (not even for a moment), and still serves what was kept.
    for path in [
        "/v2/ci/app/manifests/build-001".to_string(),
        format!("/v2/ci/app/manifests/{doomed_digest}"),
    ] {
        assert_eq!(
            reg.status(Method::GET, &path).await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        reg.status(Method::GET, "/v2/ci/app/manifests/build-299")
            .await,
        StatusCode::OK
    );
    // Each deleted tag is in the output.
    assert!(out.contains("ci/app:build-001 sha256:"), "{out}");
    assert!(!out.contains("ci/app:build-299 "), "{out}");

    // Then gc frees their blobs: only the kept manifests' blobs remain.
    berth(&dir, &["gc", "--grace-seconds", "0"]);
    let disk = assert_storage_matches_metadata(&dir);
    // One shared config + one layer per kept manifest (latest shares build 299's layer).
    assert_eq!(disk.len(), 1 + 25);
}

#[tokio::test]
async fn retention_rules_from_the_policy_file() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = write_policy(
        tmp.path(),
        "repositories:\n  - name: team/*\n    immutable_tags: [\"v*\"]\n    retention:\n      keep_last: 2\n",
    );
    let server = Server::start_with(&["--policy-file", &policy]);
    let reg = Reg::new(&server);
    for tag in ["v1", "a", "b", "c", "d"] {
        reg.push_image("team/svc", tag, &[tag.as_bytes()], None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reg.push_image("other/svc", "a", &[b"a"], None)
        .await
        .unwrap();
    // No --repository, no rule flags: the policy file says what and where.
    let out = berth(&server.data_dir, &["retention", "--policy-file", &policy]);
    assert!(out.contains("deleted: 2 tags"), "{out}");
    assert_eq!(list_tags(&reg, "team/svc").await, ["c", "d", "v1"]);
    assert_eq!(list_tags(&reg, "other/svc").await, ["a"]);
}

#[tokio::test]
async fn gc_runs_inside_the_server_on_a_schedule() {
    let server = Server::start_with(&["--gc-interval-seconds", "1", "--gc-grace-seconds", "0"]);
    let reg = Reg::new(&server);
    let image = reg
        .push_image("sched/app", "v1", &[b"to be collected"], None)
        .await
        .unwrap();
    assert_eq!(
        reg.status(
            Method::DELETE,
            &format!("/v2/sched/app/manifests/{}", image.digest)
        )
        .await,
        StatusCode::ACCEPTED
    );
    let layer = &image.blobs[1].0;
    let deadline = Instant::now() + Duration::from_secs(20);
    // The bytes go, and the run is logged (just after).
    while blobs_on_disk(&server.data_dir).contains_key(layer)
        || !server.log().contains("gc finished")
    {
        assert!(
            Instant::now() < deadline,
            "scheduled gc did not remove {layer}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn list_tags(reg: &Reg, repo: &str) -> Vec<String> {
    let v: Value = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}
