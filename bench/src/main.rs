//! berth-bench: a load generator for OCI registries (bench/run.sh drives it
//! against each server; bench/RESULTS.md has the numbers and how to read them).

mod blobgen;
mod client;
mod cold;
mod mirror;
mod procstat;
mod report;
mod s3meter;
mod stats;
mod wamp;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::MultiProgress;

use crate::client::Registry;
use crate::stats::{RunResult, WorkloadResult};
use crate::workloads::{Config, Ctx};

#[derive(Parser)]
#[command(version, about = "Load generator for OCI registries")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
pub struct Common {
    /// Registry (or static server) base URL, plain HTTP.
    #[arg(long)]
    base: String,
    /// Label for the results.
    #[arg(long, default_value = "registry")]
    server: String,
    /// Server PID: its CPU seconds and peak RSS are recorded per phase.
    /// Repeatable (replicas behind a load balancer): summed over them.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// PID of a store the server uses (PostgreSQL's postmaster, the S3
    /// server), repeatable: the CPU seconds of their process trees are
    /// recorded per phase.
    #[arg(long = "store-pid")]
    store_pids: Vec<u32>,
    /// Small sizes and short durations for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Round number (varies blob content between rounds).
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Write machine-readable results here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Large blob size in MiB (default 1024, quick 64).
    #[arg(long)]
    large_mib: Option<u64>,
    /// Hot GET concurrency (default 64, quick 16).
    #[arg(long)]
    hot_concurrency: Option<usize>,
    /// Hot GET duration per method, in seconds (default 10, quick 2).
    #[arg(long)]
    hot_secs: Option<u64>,
    /// Repositories in the catalog / tags in the tags repository (default 10000).
    #[arg(long)]
    list_count: Option<usize>,
    /// No progress bars (CI, logs).
    #[arg(long)]
    no_progress: bool,
    /// The cold-pull workload leaves the page cache alone (its blobs are
    /// then warm; for tests, and machines without root).
    #[arg(long)]
    keep_page_cache: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every workload against an OCI registry.
    Run {
        #[command(flatten)]
        common: Common,
        /// Comma-separated subset of: large,small,hot,lists,chunked,cold.
        #[arg(long, default_value = "large,small,hot,lists,chunked,cold")]
        workloads: String,
    },
    /// The ceiling workloads against a static file server (nginx): a large
    /// file pulled to a sink and the hot GET/HEAD load on a manifest-sized file.
    Ceiling {
        #[command(flatten)]
        common: Common,
        /// URL path of the large file.
        #[arg(long)]
        large_path: String,
        /// URL path of the manifest-sized file.
        #[arg(long)]
        hot_path: String,
    },
    /// Writes the exact bytes of the hot manifest (for the static server).
    HotManifest {
        out: PathBuf,
        #[arg(long)]
        quick: bool,
    },
    /// Combines run JSON files into Markdown tables and a PNG chart.
    Report(report::Args),
    /// A metering proxy in front of an S3 server: forwards every byte
    /// unchanged and counts what is written and copied, per operation.
    S3Meter(s3meter::Args),
    /// Pushes an image of many layers (the upstream of bench/mirror.sh);
    /// prints its manifest digest and size in bytes.
    SeedImage(mirror::SeedArgs),
    /// Pulls an image (manifest by tag, then every blob, digests verified)
    /// with one or many concurrent clients, as one measured phase.
    PullImage(mirror::PullArgs),
    /// Uploads through a registry whose S3 endpoint is an s3-meter proxy and
    /// reports the bytes written to the store per byte of blob.
    WriteAmp(wamp::Args),
}

impl Common {
    fn config(&self) -> Config {
        let mut cfg = if self.quick {
            Config::quick()
        } else {
            Config::full()
        };
        if let Some(m) = self.large_mib {
            cfg.large_size = m << 20;
        }
        if let Some(c) = self.hot_concurrency {
            cfg.hot_concurrency = c;
        }
        if let Some(s) = self.hot_secs {
            cfg.hot_duration = Duration::from_secs(s);
        }
        if let Some(n) = self.list_count {
            cfg.list_count = n;
        }
        cfg.drop_page_cache = !self.keep_page_cache;
        cfg
    }

    pub fn ctx(&self) -> anyhow::Result<Ctx> {
        let mp = MultiProgress::new();
        if self.no_progress {
            mp.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Ok(Ctx {
            reg: Registry::new(&self.base)?,
            pids: self.pids.clone(),
            stores: self.store_pids.clone(),
            mp,
            cfg: self.config(),
        })
    }

    pub fn finish(&self, results: Vec<WorkloadResult>) -> anyhow::Result<bool> {
        let run = RunResult {
            server: self.server.clone(),
            round: self.round,
            base: self.base.clone(),
            quick: self.quick,
            results,
        };
        print_table(&run);
        if let Some(p) = &self.json {
            std::fs::write(p, serde_json::to_vec_pretty(&run)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(run.results.iter().all(|r| r.errors == 0))
    }
}

fn print_table(run: &RunResult) {
    println!(
        "\n{} (round {}, {})",
        run.server,
        run.round,
        if run.quick { "quick" } else { "full" }
    );
    println!(
        "{:<20} {:>7} {:>6} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "workload",
        "ops",
        "errors",
        "wall s",
        "ops/s",
        "MiB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "cpu s",
        "peak MiB"
    );
    for r in &run.results {
        println!(
            "{:<20} {:>7} {:>6} {:>9.3} {:>10.1} {:>9.1} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>9}",
            r.workload,
            r.ops,
            r.errors,
            r.wall_s,
            r.ops_per_s,
            r.mib_per_s,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.server_cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
            r.server_peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
    }
}

async fn run(common: &Common, workloads: &str) -> anyhow::Result<bool> {
    let ctx = common.ctx()?;
    let want: Vec<&str> = workloads.split(',').map(str::trim).collect();
    for w in &want {
        anyhow::ensure!(
            ["large", "small", "hot", "lists", "chunked", "cold"].contains(w),
            "unknown workload {w:?}"
        );
    }
    let mut results = Vec::new();
    let round = common.round;
    if want.contains(&"large") {
        results.extend(workloads::large(&ctx, round).await);
    }
    if want.contains(&"small") {
        results.extend(workloads::small(&ctx, round).await);
    }
    if want.contains(&"hot") {
        workloads::hot_setup(&ctx)
            .await
            .context("hot image setup")?;
        let len = workloads::hot_manifest(&ctx.cfg).len() as u64;
        results.extend(workloads::hot(&ctx, "/v2/bench/hot/manifests/latest", len).await);
    }
    if want.contains(&"lists") {
        // The setup (count repositories + count tags) is reported too; the
        // list workloads only run when it fully succeeded.
        let setup = workloads::lists_setup(&ctx).await;
        let ok = setup.errors == 0;
        results.push(setup);
        if ok {
            results.extend(workloads::lists(&ctx).await);
        }
    }
    if want.contains(&"chunked") {
        results.extend(workloads::chunked(&ctx, round).await);
    }
    if want.contains(&"cold") {
        results.extend(cold::cold(&ctx, round).await);
    }
    common.finish(results)
}

async fn ceiling(common: &Common, large_path: &str, hot_path: &str) -> anyhow::Result<bool> {
    let ctx = common.ctx()?;
    let len = workloads::hot_manifest(&ctx.cfg).len() as u64;
    let mut results = vec![
        workloads::pull_large(&ctx, "large-pull-raw", large_path, None, ctx.cfg.large_size).await,
    ];
    results.extend(workloads::hot(&ctx, hot_path, len).await);
    common.finish(results)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ok = match cli.cmd {
        Cmd::Run { common, workloads } => run(&common, &workloads).await?,
        Cmd::Ceiling {
            common,
            large_path,
            hot_path,
        } => ceiling(&common, &large_path, &hot_path).await?,
        Cmd::HotManifest { out, quick } => {
            let cfg = if quick {
                Config::quick()
            } else {
                Config::full()
            };
            std::fs::write(&out, workloads::hot_manifest(&cfg))?;
            true
        }
        Cmd::Report(args) => {
            report::run(&args)?;
            true
        }
        Cmd::S3Meter(args) => {
            s3meter::run(&args).await?;
            true
        }
        Cmd::WriteAmp(args) => wamp::run(&args).await?,
        Cmd::SeedImage(args) => {
            mirror::seed(&args).await?;
            true
        }
        Cmd::PullImage(args) => mirror::pull(&args).await?,
    };
    if !ok {
        eprintln!("berth-bench: some operations failed (see errors above)");
        std::process::exit(1);
    }
    Ok(())
}
