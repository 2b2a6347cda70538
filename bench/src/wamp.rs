//! `berth-bench write-amp`: how many bytes a registry makes its object store
//! write per byte of blob. Run against a registry whose S3 endpoint is a
//! `berth-bench s3-meter` proxy: each upload is bracketed by two reads of
//! the proxy's counts, and the difference is what that upload cost.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::MultiProgress;
use reqwest::Body;
use serde::{Deserialize, Serialize};

use crate::blobgen;
use crate::client::Registry;
use crate::procstat::Probe;
use crate::s3meter::Snapshot;
use crate::stats::Recorder;
use crate::workloads::{self, Config, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// Registry base URL, plain HTTP.
    #[arg(long)]
    base: String,
    /// Label for the results.
    #[arg(long, default_value = "registry")]
    server: String,
    /// Server PID: its CPU seconds and peak RSS are recorded per upload.
    #[arg(long)]
    pid: Option<u32>,
    /// The counts file of the s3-meter proxy the registry writes through.
    #[arg(long)]
    meter: PathBuf,
    /// Uploads, each `chunked:CHUNK_MIB:BLOB_MIB` (PATCHes with
    /// Content-Range, then PUT ?digest=), `patch:BLOB_MIB` (one streamed
    /// PATCH, then PUT ?digest=) or `put:BLOB_MIB` (POST, then one PUT
    /// ?digest= with the blob). Default: chunked:1:64, chunked:1:128,
    /// chunked:5:256, chunked:64:256, patch:256, put:256 (quick: 1 MiB
    /// chunks of 16 MiB, then 32/128/64/64 MiB).
    #[arg(long = "case")]
    cases: Vec<String>,
    /// Smaller default sizes.
    #[arg(long)]
    quick: bool,
    /// Round number (varies blob content between rounds).
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Write machine-readable results here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Chunked(u64),
    Patch,
    Put,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Case {
    kind: Kind,
    size: u64,
}

fn parse_case(s: &str) -> anyhow::Result<Case> {
    let mib = |v: &str| -> anyhow::Result<u64> {
        let n: u64 = v
            .parse()
            .with_context(|| format!("{v:?} in case {s:?} is not a number of MiB"))?;
        anyhow::ensure!(n > 0, "case {s:?}: sizes must be positive");
        Ok(n << 20)
    };
    let parts: Vec<&str> = s.split(':').collect();
    Ok(match parts.as_slice() {
        ["chunked", c, b] => Case {
            kind: Kind::Chunked(mib(c)?),
            size: mib(b)?,
        },
        ["patch", b] => Case {
            kind: Kind::Patch,
            size: mib(b)?,
        },
        ["put", b] => Case {
            kind: Kind::Put,
            size: mib(b)?,
        },
        _ => {
            bail!("case {s:?}: expected chunked:CHUNK_MIB:BLOB_MIB, patch:BLOB_MIB or put:BLOB_MIB")
        }
    })
}

fn default_cases(quick: bool) -> Vec<&'static str> {
    if quick {
        vec![
            "chunked:1:16",
            "chunked:5:32",
            "chunked:64:128",
            "patch:64",
            "put:64",
        ]
    } else {
        vec![
            "chunked:1:64",
            "chunked:5:256",
            "chunked:64:256",
            "patch:256",
            "put:256",
        ]
    }
}

impl Case {
    fn label(&self) -> String {
        match self.kind {
            Kind::Chunked(c) => format!("chunked, {} MiB PATCHes", c >> 20),
            Kind::Patch => "one streamed PATCH, then PUT".into(),
            Kind::Put => "POST, then one PUT with the blob".into(),
        }
    }
}

/// What one upload cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AmpResult {
    pub server: String,
    pub case: String,
    pub label: String,
    pub chunk_bytes: Option<u64>,
    pub blob_bytes: u64,
    /// PutObject and UploadPart bodies.
    pub body_bytes: u64,
    /// CopyObject and UploadPartCopy sizes.
    pub copy_bytes: u64,
    /// (body + copy) / blob.
    pub ratio: f64,
    pub requests: u64,
    pub ops: BTreeMap<String, crate::s3meter::OpCount>,
    /// Bytes the store sent back (GETs of what was written, heads included).
    pub response_bytes: u64,
    pub unknown_copy_sources: u64,
    pub unparsed_connections: u64,
    pub wall_s: f64,
    pub mib_per_s: f64,
    pub server_cpu_s: Option<f64>,
    pub server_peak_rss_kib: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AmpRun {
    pub server: String,
    pub round: u32,
    pub results: Vec<AmpResult>,
}

async fn upload(ctx: &Ctx, case: &Case, seed: u64) -> anyhow::Result<()> {
    let repo = "bench/write-amp";
    let pb = ctx.bar(case.size, &case.label(), true);
    let reg: &Registry = &ctx.reg;
    let res = match case.kind {
        Kind::Chunked(chunk) => {
            let mut rec = Recorder::default();
            let (chunks, digest) = workloads::chunks_of(seed, case.size, chunk as usize).await;
            workloads::upload_chunked(reg, repo, &chunks, &digest, &mut rec, &pb).await
        }
        Kind::Patch | Kind::Put => {
            let size = case.size;
            let digest = tokio::task::spawn_blocking(move || blobgen::digest_of(seed, size))
                .await
                .context("digest pass")?;
            let pbc = pb.clone();
            let body = Body::wrap_stream(blobgen::stream(seed, size, move |n| pbc.inc(n)));
            let session = reg.start_upload(repo).await?;
            if case.kind == Kind::Patch {
                let next = reg.patch_stream(&session, body, size).await?;
                reg.finish_upload(&next, &digest, Body::from(bytes::Bytes::new()), 0)
                    .await
            } else {
                reg.finish_upload(&session, &digest, body, size).await
            }
        }
    };
    pb.finish();
    res.map_err(Into::into)
}

/// Reads the counts once the proxy has written what it saw (it writes
/// every 100 ms and after each request).
async fn settled(meter: &Path) -> anyhow::Result<Snapshot> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Snapshot::read(meter)
}

pub async fn run(args: &Args) -> anyhow::Result<bool> {
    let specs: Vec<String> = if args.cases.is_empty() {
        default_cases(args.quick)
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        args.cases.clone()
    };
    let cases = specs
        .iter()
        .map(|s| parse_case(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mp = MultiProgress::new();
    if args.no_progress {
        mp.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let ctx = Ctx {
        reg: Registry::new(&args.base)?,
        pids: args.pid.into_iter().collect(),
        stores: Vec::new(),
        mp,
        cfg: Config::quick(),
    };
    let mut results = Vec::new();
    for (i, (case, spec)) in cases.iter().zip(&specs).enumerate() {
        let seed = 0x3a4d ^ (i as u64) << 8 ^ u64::from(args.round) << 32;
        let before = settled(&args.meter).await?;
        let probe = Probe::start(args.pid.as_slice());
        let t0 = Instant::now();
        let res = upload(&ctx, case, seed).await;
        let wall = t0.elapsed().as_secs_f64();
        let (cpu, rss) = probe.finish();
        let d = settled(&args.meter).await?.since(&before);
        let r = AmpResult {
            server: args.server.clone(),
            case: spec.clone(),
            label: case.label(),
            chunk_bytes: match case.kind {
                Kind::Chunked(c) => Some(c),
                _ => None,
            },
            blob_bytes: case.size,
            body_bytes: d.body_bytes,
            copy_bytes: d.copy_bytes,
            ratio: (d.body_bytes + d.copy_bytes) as f64 / case.size as f64,
            requests: d.requests,
            ops: d.ops,
            response_bytes: d.response_bytes,
            unknown_copy_sources: d.unknown_copy_sources,
            unparsed_connections: d.unparsed_connections,
            wall_s: wall,
            mib_per_s: case.size as f64 / 1048576.0 / wall.max(1e-9),
            server_cpu_s: cpu,
            server_peak_rss_kib: rss,
            error: res.err().map(|e| format!("{e:#}")),
        };
        println!(
            "{:<10} {:<32} blob {:>5} MiB  bodies {:>8.1} MiB  copied {:>8.1} MiB  ratio {:>6.2}  {:>5} requests  {:>7.1} MiB/s  peak RSS {} MiB{}",
            r.server,
            r.label,
            r.blob_bytes >> 20,
            mib(r.body_bytes),
            mib(r.copy_bytes),
            r.ratio,
            r.requests,
            r.mib_per_s,
            r.server_peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            r.error
                .as_deref()
                .map_or(String::new(), |e| format!("  ERROR: {e}")),
        );
        results.push(r);
    }
    let ok = results
        .iter()
        .all(|r| r.error.is_none() && r.unknown_copy_sources == 0 && r.unparsed_connections == 0);
    let run = AmpRun {
        server: args.server.clone(),
        round: args.round,
        results,
    };
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&run)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ok)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// The S3 requests of one upload, most frequent first: `UploadPart 33, …`.
fn ops_summary(ops: &BTreeMap<String, crate::s3meter::OpCount>) -> String {
    let mut v: Vec<(&String, u64)> = ops.iter().map(|(k, c)| (k, c.count)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The write-amplification table of the runs in `files` (one row per server
/// and case; with several rounds, the round with the median ratio).
pub fn table(md: &mut String, files: &[PathBuf], servers: &[String]) -> anyhow::Result<()> {
    let mut rows: BTreeMap<(String, String), Vec<AmpResult>> = BTreeMap::new();
    let mut case_order: Vec<String> = Vec::new();
    for f in files {
        let run: AmpRun = serde_json::from_slice(
            &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("parsing {}", f.display()))?;
        for r in run.results {
            if !case_order.contains(&r.case) {
                case_order.push(r.case.clone());
            }
            rows.entry((r.server.clone(), r.case.clone()))
                .or_default()
                .push(r);
        }
    }
    writeln!(md, "\n### write amplification\n")?;
    writeln!(
        md,
        "| upload | server | blob MiB | sent in bodies MiB | copied in the store MiB | (sent + copied) / blob | S3 requests | read back MiB | MiB/s | peak RSS MiB | errors |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|")?;
    for case in &case_order {
        for s in servers {
            let Some(rs) = rows.get_mut(&(s.clone(), case.clone())) else {
                continue;
            };
            rs.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
            let r = &rs[rs.len() / 2];
            let err = rs
                .iter()
                .filter_map(|r| r.error.as_deref())
                .next()
                .map_or_else(
                    || {
                        if r.unknown_copy_sources > 0 {
                            format!("{} copies of unknown size", r.unknown_copy_sources)
                        } else {
                            "0".into()
                        }
                    },
                    |e| e.chars().take(120).collect(),
                );
            writeln!(
                md,
                "| {} | {s} | {} | {:.1} | {:.1} | **{:.2}** | {} | {:.1} | {:.1} | {} | {} |",
                r.label,
                r.blob_bytes >> 20,
                mib(r.body_bytes),
                mib(r.copy_bytes),
                r.ratio,
                ops_summary(&r.ops),
                mib(r.response_bytes),
                r.mib_per_s,
                r.server_peak_rss_kib
                    .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
                err,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse() {
        assert_eq!(
            parse_case("chunked:5:256").unwrap(),
            Case {
                kind: Kind::Chunked(5 << 20),
                size: 256 << 20
            }
        );
        assert_eq!(parse_case("put:1").unwrap().kind, Kind::Put);
        assert_eq!(parse_case("patch:2").unwrap().size, 2 << 20);
        assert!(parse_case("chunked:0:1").is_err());
        assert!(parse_case("stream:1").is_err());
        for c in default_cases(false).into_iter().chain(default_cases(true)) {
            parse_case(c).unwrap();
        }
    }
}
