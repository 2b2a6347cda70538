//! The workloads. Each measured phase is timed on its own (setup excluded),
//! with the server's CPU time and peak RSS read around it when its PID is known.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::{Body, Method};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::blobgen;
use crate::client::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Registry};
use crate::procstat::Probe;
use crate::stats::{Recorder, WorkloadResult};

/// Sizes and counts of every workload.
#[derive(Debug, Clone)]
pub struct Config {
    pub large_size: u64,
    pub small_clients: usize,
    pub small_images: usize,
    pub small_layer: usize,
    pub hot_concurrency: usize,
    pub hot_duration: Duration,
    pub list_count: usize,
    pub list_reps: usize,
    pub list_budget: Duration,
    pub chunked_size: u64,
    /// PATCH sizes of the chunked upload, each a workload of its own.
    pub chunk_sizes: Vec<(&'static str, usize)>,
    /// The cold-pull workload: this many distinct blobs of this size.
    pub cold_blobs: usize,
    pub cold_size: u64,
    /// Drop the page cache before the cold pulls (needs root).
    pub drop_page_cache: bool,
    pub setup_concurrency: usize,
    pub seed: u64,
}

impl Config {
    pub fn full() -> Config {
        Config {
            large_size: 1 << 30,
            small_clients: 16,
            small_images: 8,
            small_layer: 32 << 10,
            hot_concurrency: 64,
            hot_duration: Duration::from_secs(10),
            list_count: 10_000,
            list_reps: 20,
            list_budget: Duration::from_secs(15),
            chunked_size: 256 << 20,
            chunk_sizes: vec![
                ("chunked-upload", 5 << 20),
                ("chunked-upload-1m", 1 << 20),
                ("chunked-upload-64m", 64 << 20),
            ],
            cold_blobs: 4,
            cold_size: 1 << 30,
            drop_page_cache: true,
            setup_concurrency: 32,
            seed: 1,
        }
    }

    pub fn quick() -> Config {
        Config {
            large_size: 64 << 20,
            small_clients: 4,
            small_images: 2,
            hot_concurrency: 16,
            hot_duration: Duration::from_secs(2),
            list_count: 300,
            list_reps: 3,
            list_budget: Duration::from_secs(3),
            chunked_size: 16 << 20,
            cold_size: 32 << 20,
            ..Config::full()
        }
    }
}

pub struct Ctx {
    pub reg: Registry,
    /// The server's PIDs (one, or its replicas; their CPU is summed).
    pub pids: Vec<u32>,
    /// PIDs of the stores behind the server (their CPU is recorded too).
    pub stores: Vec<u32>,
    pub mp: MultiProgress,
    pub cfg: Config,
}

impl Ctx {
    pub fn bar(&self, len: u64, msg: &str, bytes: bool) -> ProgressBar {
        let tpl = if bytes {
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}"
        } else {
            "{msg:24} [{bar:30}] {pos}/{len} {per_sec} {elapsed}"
        };
        let pb = self.mp.add(ProgressBar::new(len));
        pb.set_style(
            ProgressStyle::with_template(tpl)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    }

    /// Runs `f` as a measured phase: server CPU and peak RSS around it.
    pub async fn measured<F, Fut>(&self, name: &str, f: F) -> WorkloadResult
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Recorder>,
    {
        let probe = Probe::with_stores(&self.pids, &self.stores);
        let t0 = Instant::now();
        let rec = f().await;
        let wall = t0.elapsed();
        let mut r = rec.finish(name, wall);
        (r.server_cpu_s, r.server_peak_rss_kib) = probe.finish();
        r.store_cpu_s = probe.store_cpu();
        r
    }
}

/// An image manifest with a config and layers, given as (digest, size).
pub fn manifest(config: (&str, usize), layers: &[(String, usize)], note: Option<&str>) -> Bytes {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({"mediaType": OCI_LAYER, "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    if let Some(n) = note {
        m["annotations"] = json!({"org.opencontainers.image.ref.name": n});
    }
    Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
}

pub fn config_blob(seed: u64) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [format!("BENCH_SEED={seed}")], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap_or_default(),
    )
}

/// A small image: (config, layers, manifest), all derived from `seed`.
struct Image {
    config: (String, Bytes),
    layers: Vec<(String, Bytes)>,
    manifest: Bytes,
}

fn image(seed: u64, layer: usize) -> Image {
    let config = config_blob(seed);
    let layers: Vec<(String, Bytes)> = (0..3u64)
        .map(|i| {
            let b = blobgen::small(seed.wrapping_mul(31).wrapping_add(i), layer << i);
            (blobgen::sha256(&b), b)
        })
        .collect();
    let cd = blobgen::sha256(&config);
    let m = manifest(
        (&cd, config.len()),
        &layers
            .iter()
            .map(|(d, b)| (d.clone(), b.len()))
            .collect::<Vec<_>>(),
        None,
    );
    Image {
        config: (cd, config),
        layers,
        manifest: m,
    }
}

/// The manifest the hot-GET workload fetches (also served by nginx as the ceiling).
pub fn hot_manifest(cfg: &Config) -> Bytes {
    image(cfg.seed ^ 0x4807, cfg.small_layer).manifest
}

async fn push_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    img: &Image,
) -> crate::client::Result<()> {
    for (d, b) in std::iter::once(&img.config).chain(img.layers.iter()) {
        if !reg.blob_exists(repo, d).await? {
            reg.push_blob(repo, d, b.clone()).await?;
        }
    }
    reg.put_manifest(repo, tag, img.manifest.clone()).await
}

/// Pulls an image by tag and checks every digest; returns bytes read.
async fn pull_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    want: &str,
) -> crate::client::Result<u64> {
    let m = reg.get_manifest(repo, tag).await?;
    let got = blobgen::sha256(&m);
    if got != want {
        return Err(crate::client::Error::Digest {
            expected: want.to_string(),
            got,
        });
    }
    let v: serde_json::Value = serde_json::from_slice(&m).unwrap_or_default();
    let mut digests = vec![
        v["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    if let Some(ls) = v["layers"].as_array() {
        digests.extend(
            ls.iter()
                .map(|l| l["digest"].as_str().unwrap_or_default().to_string()),
        );
    }
    let mut n = m.len() as u64;
    for d in digests {
        n += reg
            .pull(&format!("/v2/{repo}/blobs/{d}"), Some(&d), &|_| {})
            .await?;
    }
    Ok(n)
}

/// Push then pull of one large blob, streamed from the generator.
pub async fn large(ctx: &Ctx, round: u32) -> Vec<WorkloadResult> {
    let size = ctx.cfg.large_size;
    let seed = ctx.cfg.seed ^ 0x1a26e ^ u64::from(round) << 32;
    let spin = ctx.bar(0, "large: digest pass", false);
    let digest = tokio::task::spawn_blocking(move || blobgen::digest_of(seed, size))
        .await
        .unwrap_or_default();
    spin.finish_and_clear();
    let repo = "bench/large";

    let pb = ctx.bar(size, "large-push", true);
    let push = ctx
        .measured("large-push", || async {
            let mut rec = Recorder::default();
            let t0 = Instant::now();
            let pbc = pb.clone();
            let res = async {
                let session = ctx.reg.start_upload(repo).await?;
                let body = Body::wrap_stream(blobgen::stream(seed, size, move |n| pbc.inc(n)));
                ctx.reg.finish_upload(&session, &digest, body, size).await
            }
            .await;
            match res {
                Ok(()) => {
                    rec.bytes = size;
                    rec.ok(t0.elapsed());
                }
                Err(e) => rec.err(e),
            }
            rec
        })
        .await;
    pb.finish();

    let mut out = vec![push];
    for (name, verify) in [("large-pull", true), ("large-pull-raw", false)] {
        let path = format!("/v2/{repo}/blobs/{digest}");
        out.push(pull_large(ctx, name, &path, verify.then_some(digest.as_str()), size).await);
    }
    out
}

/// GET of a large object to a sink (hashing it when `verify` is given).
pub async fn pull_large(
    ctx: &Ctx,
    name: &str,
    path: &str,
    verify: Option<&str>,
    size: u64,
) -> WorkloadResult {
    let pb = ctx.bar(size, name, true);
    let r = ctx
        .measured(name, || async {
            let mut rec = Recorder::default();
            let t0 = Instant::now();
            let pbc = pb.clone();
            match ctx.reg.pull(path, verify, &move |n| pbc.inc(n)).await {
                Ok(n) => {
                    rec.bytes = n;
                    rec.ok(t0.elapsed());
                }
                Err(e) => rec.err(e),
            }
            rec
        })
        .await;
    pb.finish();
    r
}

/// N concurrent clients, each pushing images (3 layers + config + manifest),
/// then pulling them all back with digest checks.
pub async fn small(ctx: &Ctx, round: u32) -> Vec<WorkloadResult> {
    let cfg = &ctx.cfg;
    let (clients, per) = (cfg.small_clients, cfg.small_images);
    let base_seed = cfg.seed ^ 0x5a11 ^ u64::from(round) << 40;
    let images: Arc<Vec<Vec<Image>>> = Arc::new(
        (0..clients)
            .map(|c| {
                (0..per)
                    .map(|i| image(base_seed + (c * 10_000 + i) as u64, cfg.small_layer))
                    .collect()
            })
            .collect(),
    );
    let mut out = Vec::new();
    for phase in ["small-push", "small-pull"] {
        let pb = ctx.bar((clients * per) as u64, phase, false);
        let r = ctx
            .measured(phase, || async {
                let total = Arc::new(Mutex::new(Recorder::default()));
                let mut tasks = Vec::new();
                for c in 0..clients {
                    let (reg, images, total, pb) =
                        (ctx.reg.clone(), images.clone(), total.clone(), pb.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut rec = Recorder::default();
                        let repo = format!("bench/small-{c:02}");
                        for (i, img) in images[c].iter().enumerate() {
                            let tag = format!("v{i}");
                            let t0 = Instant::now();
                            let res = if phase == "small-push" {
                                push_image(&reg, &repo, &tag, img).await.map(|()| {
                                    img.manifest.len() as u64
                                        + img.config.1.len() as u64
                                        + img.layers.iter().map(|l| l.1.len() as u64).sum::<u64>()
                                })
                            } else {
                                pull_image(&reg, &repo, &tag, &blobgen::sha256(&img.manifest)).await
                            };
                            match res {
                                Ok(n) => {
                                    rec.bytes += n;
                                    rec.ok(t0.elapsed());
                                }
                                Err(e) => rec.err(e),
                            }
                            pb.inc(1);
                        }
                        total.lock().await.merge(rec);
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
                let mut total = total.lock().await;
                std::mem::take(&mut *total)
            })
            .await;
        pb.finish();
        out.push(r);
    }
    out
}

/// Pushes the hot image (skipped against a static server serving the same bytes).
pub async fn hot_setup(ctx: &Ctx) -> crate::client::Result<()> {
    let img = image(ctx.cfg.seed ^ 0x4807, ctx.cfg.small_layer);
    push_image(&ctx.reg, "bench/hot", "latest", &img).await
}

/// GET and HEAD of `path` from many concurrent clients for a fixed time.
pub async fn hot(ctx: &Ctx, path: &str, expect_len: u64) -> Vec<WorkloadResult> {
    let mut out = Vec::new();
    for (name, method) in [("hot-get", Method::GET), ("hot-head", Method::HEAD)] {
        let dur = ctx.cfg.hot_duration;
        let pb = ctx.bar(dur.as_secs(), name, false);
        let r = ctx
            .measured(name, || async {
                let deadline = Instant::now() + dur;
                let ticker = {
                    let pb = pb.clone();
                    tokio::spawn(async move {
                        while Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            pb.inc(1);
                        }
                    })
                };
                let stop = Arc::new(AtomicBool::new(false));
                let clients = hot_clients(ctx, method, path, expect_len, stop.clone());
                tokio::time::sleep_until(deadline.into()).await;
                stop.store(true, Ordering::Relaxed);
                let total = join_recorders(clients).await;
                ticker.abort();
                total
            })
            .await;
        pb.finish();
        out.push(r);
    }
    out
}

/// The hot load: `hot_concurrency` clients sending `method` to `path` in a
/// loop until `stop` is set, each recording its own latencies.
pub fn hot_clients(
    ctx: &Ctx,
    method: Method,
    path: &str,
    expect_len: u64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Recorder>> {
    (0..ctx.cfg.hot_concurrency)
        .map(|_| {
            let (reg, method, path, stop) = (
                ctx.reg.clone(),
                method.clone(),
                path.to_string(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    match reg.fetch(method.clone(), &path).await {
                        Ok(n) if method == Method::HEAD || n == expect_len => {
                            rec.bytes += n;
                            rec.ok(t0.elapsed());
                        }
                        Ok(n) => rec.err(format!("body of {n} bytes, expected {expect_len}")),
                        Err(e) => rec.err(e),
                    }
                }
                rec
            })
        })
        .collect()
}

/// Waits for every task and merges what they recorded.
pub async fn join_recorders(tasks: Vec<tokio::task::JoinHandle<Recorder>>) -> Recorder {
    let mut total = Recorder::default();
    for t in tasks {
        match t.await {
            Ok(r) => total.merge(r),
            Err(e) => total.err(format!("client task failed: {e}")),
        }
    }
    total
}

/// Creates `count` repositories (one image each) and one repository with
/// `count` tags (a distinct manifest per tag); latencies per manifest (plus
/// the blob mount for a new repository).
pub async fn lists_setup(ctx: &Ctx) -> WorkloadResult {
    ctx.measured("lists-setup", || lists_setup_inner(ctx)).await
}

async fn lists_setup_inner(ctx: &Ctx) -> Recorder {
    let count = ctx.cfg.list_count;
    let config = config_blob(7);
    let cd = blobgen::sha256(&config);
    let pb = ctx.bar(2 * count as u64, "lists: setup", false);
    let jobs = (0..2 * count).map(|i| {
        let (reg, config, cd, pb) = (ctx.reg.clone(), config.clone(), cd.clone(), pb.clone());
        async move {
            let t0 = Instant::now();
            let res = if i < count {
                let repo = format!("bench/cat/r{i:05}");
                async {
                    reg.mount_or_push(&repo, "bench/tags", &cd, config.clone())
                        .await?;
                    reg.put_manifest(&repo, "v1", manifest((&cd, config.len()), &[], None))
                        .await
                }
                .await
            } else {
                let t = format!("t{:05}", i - count);
                reg.put_manifest(
                    "bench/tags",
                    &t,
                    manifest((&cd, config.len()), &[], Some(&t)),
                )
                .await
            };
            pb.inc(1);
            (t0.elapsed(), res)
        }
    });
    let mut rec = Recorder::default();
    // The tags repository needs its config blob before its manifests.
    if let Err(e) = ctx.reg.push_blob("bench/tags", &cd, config.clone()).await {
        rec.err(e);
    }
    let mut s = futures::stream::iter(jobs).buffer_unordered(ctx.cfg.setup_concurrency);
    while let Some((d, res)) = s.next().await {
        match res {
            Ok(()) => rec.ok(d),
            Err(e) => rec.err(e),
        }
    }
    pb.finish();
    rec
}

/// Catalog and tags list: one page (n=100), and full listings following Link
/// headers, paged with n=100, n=1000 and the server's default page size.
pub async fn lists(ctx: &Ctx) -> Vec<WorkloadResult> {
    let count = ctx.cfg.list_count;
    // (name, first URL, JSON key, follow Link headers, entries expected)
    let cases: [(&str, &str, &str, bool, usize); 8] = [
        (
            "catalog-page-n100",
            "/v2/_catalog?n=100",
            "repositories",
            false,
            100,
        ),
        (
            "catalog-full-n100",
            "/v2/_catalog?n=100",
            "repositories",
            true,
            count,
        ),
        (
            "catalog-full-n1000",
            "/v2/_catalog?n=1000",
            "repositories",
            true,
            count,
        ),
        ("catalog-full", "/v2/_catalog", "repositories", true, count),
        (
            "tags-page-n100",
            "/v2/bench/tags/tags/list?n=100",
            "tags",
            false,
            100,
        ),
        (
            "tags-full-n100",
            "/v2/bench/tags/tags/list?n=100",
            "tags",
            true,
            count,
        ),
        (
            "tags-full-n1000",
            "/v2/bench/tags/tags/list?n=1000",
            "tags",
            true,
            count,
        ),
        ("tags-full", "/v2/bench/tags/tags/list", "tags", true, count),
    ];
    let mut out = Vec::new();
    for (name, path, key, follow, min_entries) in cases {
        let reps = if !follow {
            ctx.cfg.list_reps * 10
        } else {
            ctx.cfg.list_reps
        };
        let pb = ctx.bar(reps as u64, name, false);
        let budget = ctx.cfg.list_budget;
        let r = ctx
            .measured(name, || async {
                let mut rec = Recorder::default();
                let start = Instant::now();
                for i in 0..reps {
                    // At least 3 samples, then stop when the time budget is spent.
                    if i >= 3 && start.elapsed() > budget {
                        break;
                    }
                    let t0 = Instant::now();
                    match ctx.reg.list(path, key, follow).await {
                        Ok((n, reqs)) if n >= min_entries => {
                            rec.ok(t0.elapsed());
                            rec.requests += reqs as u64;
                        }
                        Ok((n, reqs)) => rec.err(format!(
                            "{n} entries in {reqs} requests, expected at least {min_entries}"
                        )),
                        Err(e) => rec.err(e),
                    }
                    pb.inc(1);
                }
                rec
            })
            .await;
        pb.finish();
        out.push(r);
    }
    out
}

/// Chunked uploads: POST, PATCH with Content-Range per chunk, PUT ?digest=,
/// once per chunk size. Latencies are per PATCH. The chunks are made before
/// the phase (an untimed pass), so the client's generating and hashing is
/// not counted as the server's time.
pub async fn chunked(ctx: &Ctx, round: u32) -> Vec<WorkloadResult> {
    let size = ctx.cfg.chunked_size;
    let mut out = Vec::new();
    for (i, &(name, chunk)) in ctx.cfg.chunk_sizes.iter().enumerate() {
        // A distinct blob per chunk size and round: nothing is deduplicated.
        let seed = ctx.cfg.seed ^ 0xc4c ^ u64::from(round) << 32 ^ (i as u64) << 48;
        let (chunks, digest) = chunks_of(seed, size, chunk).await;
        let pb = ctx.bar(size, name, true);
        let r = ctx
            .measured(name, || async {
                let mut rec = Recorder::default();
                let res =
                    upload_chunked(&ctx.reg, "bench/chunked", &chunks, &digest, &mut rec, &pb)
                        .await;
                if let Err(e) = res
                    && rec.errors == 0
                {
                    rec.err(e);
                }
                rec
            })
            .await;
        pb.finish();
        out.push(r);
    }
    out
}

/// The blob `(seed, size)` cut into `chunk`-byte pieces, and its digest.
pub async fn chunks_of(seed: u64, size: u64, chunk: usize) -> (Vec<Bytes>, String) {
    let made = tokio::task::spawn_blocking(move || {
        let mut g = blobgen::BlobGen::new(seed, size);
        let mut h = Sha256::new();
        let mut chunks = Vec::new();
        let mut buf = BytesMut::with_capacity(chunk);
        while let Some(c) = g.next_chunk() {
            h.update(&c);
            buf.extend_from_slice(&c);
            while buf.len() >= chunk {
                chunks.push(buf.split_to(chunk).freeze());
            }
        }
        if !buf.is_empty() {
            chunks.push(buf.freeze());
        }
        (chunks, format!("sha256:{}", hex::encode(h.finalize())))
    })
    .await;
    made.unwrap_or_default()
}

/// Uploads `chunks` to `repo` in one PATCH each with Content-Range, then
/// PUT ?digest= without a body; records each PATCH's latency and bytes in
/// `rec`.
pub async fn upload_chunked(
    reg: &Registry,
    repo: &str,
    chunks: &[Bytes],
    digest: &str,
    rec: &mut Recorder,
    pb: &ProgressBar,
) -> crate::client::Result<()> {
    let mut session = reg.start_upload(repo).await?;
    let mut offset = 0u64;
    for data in chunks {
        let n = data.len() as u64;
        let t0 = Instant::now();
        match reg.patch_chunk(&session, offset, data.clone()).await {
            Ok(next) => {
                rec.ok(t0.elapsed());
                session = next;
            }
            Err(e) => {
                rec.err(&e);
                return Err(e);
            }
        }
        offset += n;
        rec.bytes += n;
        pb.inc(n);
    }
    reg.finish_upload(&session, digest, Body::from(Bytes::new()), 0)
        .await
}
