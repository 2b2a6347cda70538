//! The cold-pull workload: concurrent pulls of large blobs that are not in
//! the page cache, while the hot manifest load runs beside them.
//!
//! A server that sends a cold file from an async worker (sendfile, read)
//! blocks that worker on the disk, and every request queued on it waits:
//! the hot load's tail latency shows it. The page cache is dropped
//! (`sync`, then `3` into /proc/sys/vm/drop_caches, which needs root) after
//! the blobs are pushed (unless `--keep-page-cache`); without root the
//! phase still runs and says so in its error column.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::ProgressBar;
use reqwest::{Body, Method};

use crate::blobgen;
use crate::client::Registry;
use crate::stats::{Recorder, WorkloadResult};
use crate::workloads::{self, Ctx, hot_clients, join_recorders};

const REPO: &str = "bench/cold";

/// Pushes the blobs and the hot image, drops the page cache, then pulls
/// every blob at once (raw, byte counts checked) under the hot GET load;
/// then the same once more with the blobs now in the page cache, the
/// control: what the pulls cost the hot load when no disk is involved.
/// Rows: `cold-pull` / `warm-pull` (MiB/s over all the pulls) and
/// `hot-get-under-cold-pull` / `hot-get-under-warm-pull` (the hot load for
/// exactly as long).
pub async fn cold(ctx: &Ctx, round: u32) -> Vec<WorkloadResult> {
    let (count, size) = (ctx.cfg.cold_blobs, ctx.cfg.cold_size);
    let seeds: Vec<u64> = (0..count as u64)
        .map(|i| ctx.cfg.seed ^ 0xc01d ^ u64::from(round) << 32 ^ i << 40)
        .collect();
    let digests = match setup(ctx, &seeds, size).await {
        Ok(d) => d,
        Err(e) => return failed(&e),
    };
    let dropped = if ctx.cfg.drop_page_cache {
        drop_page_cache().await
    } else {
        Ok(())
    };
    let mut out = pulls_under_hot(ctx, "cold", &digests, size).await;
    if let (Err(e), Some(pulls)) = (dropped, out.first_mut()) {
        pulls.errors += 1;
        pulls.first_error.get_or_insert(e);
    }
    out.extend(pulls_under_hot(ctx, "warm", &digests, size).await);
    out
}

/// One measured phase: the hot GET clients start, every blob is pulled at
/// once, the hot clients stop when the last pull ends.
async fn pulls_under_hot(
    ctx: &Ctx,
    kind: &str,
    digests: &[String],
    size: u64,
) -> Vec<WorkloadResult> {
    let name = format!("{kind}-pull");
    let hot_len = workloads::hot_manifest(&ctx.cfg).len() as u64;
    let pb = ctx.bar(size * digests.len() as u64, &name, true);
    let mut hot = None;
    let pulls = ctx
        .measured(&name, || async {
            let stop = Arc::new(AtomicBool::new(false));
            let path = "/v2/bench/hot/manifests/latest";
            let hot_clients = hot_clients(ctx, Method::GET, path, hot_len, stop.clone());
            let t0 = Instant::now();
            // Each pull is its own client on its own thread (as pulls from
            // other nodes would be): a pull streaming gigabytes on the hot
            // clients' runtime would delay them there, and that delay is
            // the client's, not the server's.
            let tasks = digests
                .iter()
                .map(|d| {
                    let (base, pb, d) = (ctx.reg.base.clone(), pb.clone(), d.clone());
                    tokio::task::spawn_blocking(move || pull_on_own_thread(&base, &d, size, pb))
                })
                .collect();
            let rec = join_recorders(tasks).await;
            stop.store(true, Ordering::Relaxed);
            let wall = t0.elapsed();
            hot = Some((join_recorders(hot_clients).await, wall));
            rec
        })
        .await;
    pb.finish();
    let (hot_rec, wall) = hot.unwrap_or_default();
    let mut hot = hot_rec.finish(&format!("hot-get-under-{kind}-pull"), wall);
    // One server, one phase: its CPU and memory are the pulls' row's.
    (hot.server_cpu_s, hot.server_peak_rss_kib) = (pulls.server_cpu_s, pulls.server_peak_rss_kib);
    vec![pulls, hot]
}

/// Pulls one blob to a sink with a client of its own on a runtime of its
/// own (this thread), byte count checked.
fn pull_on_own_thread(base: &str, digest: &str, size: u64, pb: ProgressBar) -> Recorder {
    let mut rec = Recorder::default();
    // The receiving end of a pull runs on another machine in real life;
    // here it shares the cores with the server and the hot clients. At the
    // lowest priority it takes only the CPU they leave, so the hot load's
    // latency shows what the server does, not this thread's copying.
    // SAFETY: setpriority on the calling thread (tid), no pointers.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
    let run = async {
        let reg = Registry::new(base)?;
        let t0 = Instant::now();
        let path = format!("/v2/{REPO}/blobs/{digest}");
        let n = reg.pull(&path, None, &move |n| pb.inc(n)).await?;
        Ok::<_, anyhow::Error>((n, t0.elapsed()))
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run));
    match result {
        Ok((n, d)) if n == size => {
            rec.bytes = n;
            rec.ok(d);
        }
        Ok((n, _)) => rec.err(format!("{n} bytes of {size}")),
        Err(e) => rec.err(format!("{e:#}")),
    }
    rec
}

/// The blobs (pushed concurrently, streamed from the generator) and the hot
/// image; returns the blobs' digests. Untimed.
async fn setup(ctx: &Ctx, seeds: &[u64], size: u64) -> anyhow::Result<Vec<String>> {
    workloads::hot_setup(ctx).await?;
    let pb = ctx.bar(size * seeds.len() as u64, "cold: setup", true);
    let digests = digests(seeds, size).await?;
    let pushes: Vec<_> = seeds
        .iter()
        .zip(digests.clone())
        .map(|(&seed, digest)| {
            let (reg, pb) = (ctx.reg.clone(), pb.clone());
            tokio::spawn(async move {
                let session = reg.start_upload(REPO).await?;
                let body = Body::wrap_stream(blobgen::stream(seed, size, move |n| pb.inc(n)));
                reg.finish_upload(&session, &digest, body, size).await
            })
        })
        .collect();
    for p in pushes {
        p.await??;
    }
    pb.finish_and_clear();
    Ok(digests)
}

/// The blobs' digests, computed in an untimed pass over the generator.
async fn digests(seeds: &[u64], size: u64) -> anyhow::Result<Vec<String>> {
    let tasks: Vec<_> = seeds
        .iter()
        .map(|&s| tokio::task::spawn_blocking(move || blobgen::digest_of(s, size)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

/// Writes every dirty page out, then drops the clean ones (needs root).
async fn drop_page_cache() -> Result<(), String> {
    tokio::task::spawn_blocking(|| {
        let sync = std::process::Command::new("sync")
            .status()
            .map_err(|e| format!("sync: {e}"))?;
        if !sync.success() {
            return Err(format!("sync: {sync}"));
        }
        std::fs::write("/proc/sys/vm/drop_caches", "3")
            .map_err(|e| format!("page cache not dropped (/proc/sys/vm/drop_caches: {e})"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Both rows with the setup's error, so the report shows why they are empty.
fn failed(e: &anyhow::Error) -> Vec<WorkloadResult> {
    [
        "cold-pull",
        "hot-get-under-cold-pull",
        "warm-pull",
        "hot-get-under-warm-pull",
    ]
    .iter()
    .map(|name| {
        let mut rec = Recorder::default();
        rec.err(format!("setup: {e:#}"));
        rec.finish(name, std::time::Duration::ZERO)
    })
    .collect()
}
