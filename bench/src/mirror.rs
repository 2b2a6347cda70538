//! The pull-through cache workloads (bench/mirror.sh): an image of many
//! layers pushed to the upstream, then pulled through a mirror by one or
//! many concurrent clients, every digest verified.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::Common;
use crate::blobgen;
use crate::client::Registry;
use crate::stats::Recorder;
use crate::workloads::{config_blob, manifest};

#[derive(clap::Args)]
pub struct SeedArgs {
    /// The upstream registry's base URL, plain HTTP.
    #[arg(long)]
    base: String,
    /// Repository and tag to push.
    #[arg(long, default_value = "bench/app")]
    repo: String,
    #[arg(long, default_value = "v1")]
    tag: String,
    /// Layers of random (incompressible) data.
    #[arg(long, default_value_t = 10)]
    layers: usize,
    /// Size of each layer, MiB.
    #[arg(long, default_value_t = 4)]
    layer_mib: usize,
    /// Varies the content.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Pushes the image; prints the manifest digest and the image's size.
pub async fn seed(args: &SeedArgs) -> anyhow::Result<()> {
    let reg = Registry::new(&args.base)?;
    let config = config_blob(args.seed ^ 0x3177);
    let config_digest = blobgen::sha256(&config);
    reg.push_blob(&args.repo, &config_digest, config.clone())
        .await
        .context("pushing the config")?;
    let mut layers = Vec::new();
    for i in 0..args.layers {
        let b = blobgen::small(args.seed << 16 | i as u64, args.layer_mib << 20);
        let d = blobgen::sha256(&b);
        reg.push_blob(&args.repo, &d, b.clone())
            .await
            .with_context(|| format!("pushing layer {i}"))?;
        layers.push((d, b.len()));
    }
    let m = manifest((&config_digest, config.len()), &layers, None);
    reg.put_manifest(&args.repo, &args.tag, m.clone())
        .await
        .context("pushing the manifest")?;
    let total = m.len() + config.len() + layers.iter().map(|l| l.1).sum::<usize>();
    println!("{} {total}", blobgen::sha256(&m));
    Ok(())
}

#[derive(clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub common: Common,
    /// Repository as the client names it (e.g. `upstream.test/bench/app`
    /// for a prefix-addressed mirror).
    #[arg(long)]
    repo: String,
    #[arg(long, default_value = "v1")]
    tag: String,
    /// The manifest digest the pull must get.
    #[arg(long)]
    digest: String,
    /// Concurrent pulls of the whole image.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Blobs fetched at once within one pull (containerd's and Docker's
    /// default max concurrent downloads is 3).
    #[arg(long, default_value_t = 3)]
    parallel_blobs: usize,
    /// Name of the measured phase in the results.
    #[arg(long, default_value = "pull")]
    workload: String,
}

/// One pull: the manifest by tag, then every blob (`parallel` at a time),
/// each digest checked; returns the bytes read.
async fn pull_once(
    reg: &Registry,
    repo: &str,
    tag: &str,
    want: &str,
    parallel: usize,
) -> anyhow::Result<u64> {
    let m = reg.get_manifest(repo, tag).await?;
    let got = blobgen::sha256(&m);
    anyhow::ensure!(got == want, "manifest digest {got}, expected {want}");
    let v: serde_json::Value = serde_json::from_slice(&m)?;
    let digests: Vec<String> = std::iter::once(&v["config"])
        .chain(v["layers"].as_array().into_iter().flatten())
        .filter_map(|d| d["digest"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(digests.len() > 1, "manifest without layers");
    let sizes = futures::stream::iter(digests)
        .map(|d| async move {
            reg.pull(&format!("/v2/{repo}/blobs/{d}"), Some(&d), &|_| {})
                .await
        })
        .buffer_unordered(parallel.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut n = m.len() as u64;
    for s in sizes {
        n += s?;
    }
    Ok(n)
}

/// `concurrency` clients pulling the whole image at once, as one measured
/// phase (latency per pull; the wall time is until the last one finished).
pub async fn pull(args: &PullArgs) -> anyhow::Result<bool> {
    let ctx = args.common.ctx()?;
    let r = ctx
        .measured(&args.workload, || async {
            let total = Arc::new(Mutex::new(Recorder::default()));
            let tasks: Vec<_> = (0..args.concurrency)
                .map(|_| {
                    let (reg, total) = (ctx.reg.clone(), total.clone());
                    let (repo, tag, want) =
                        (args.repo.clone(), args.tag.clone(), args.digest.clone());
                    let parallel = args.parallel_blobs;
                    tokio::spawn(async move {
                        let t0 = Instant::now();
                        let res = pull_once(&reg, &repo, &tag, &want, parallel).await;
                        let mut t = total.lock().await;
                        match res {
                            Ok(n) => {
                                t.bytes += n;
                                t.ok(t0.elapsed());
                            }
                            Err(e) => t.err(format!("{e:#}")),
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
            std::mem::take(&mut *total.lock().await)
        })
        .await;
    args.common.finish(vec![r])
}
