//! `berth-bench report`: medians over rounds, Markdown tables per workload with
//! ratios and ceilings, the targets checked, and a PNG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;

use crate::stats::{RunResult, WorkloadResult};

#[derive(clap::Args)]
pub struct Args {
    /// Markdown output (tables and targets).
    #[arg(long)]
    out: PathBuf,
    /// PNG chart output.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// The server under test (first column, numerator of the ratios).
    #[arg(long, default_value = "berth")]
    subject: String,
    /// The peers, comma separated, in column order.
    #[arg(long)]
    peers: String,
    /// The static-file ceiling server label (nginx).
    #[arg(long, default_value = "nginx")]
    ceiling: String,
    /// Machine limits, `name=value` (MiB/s): sha256, disk_fsync, curl_nginx.
    #[arg(long = "limit")]
    limits: Vec<String>,
    /// JSON files written by `berth-bench write-amp --json`: a write
    /// amplification table after the others.
    #[arg(long = "write-amp")]
    write_amp: Vec<PathBuf>,
    /// No "Targets" section (the targets are for the filesystem run).
    #[arg(long)]
    no_targets: bool,
    /// The JSON files written by `berth-bench run/ceiling --json`.
    files: Vec<PathBuf>,
}

/// Medians over rounds of one (server, workload).
#[derive(Debug, Clone, Default)]
struct Agg {
    rounds: usize,
    ops: u64,
    errors: u64,
    wall_s: f64,
    ops_per_s: f64,
    mib_per_s: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    cpu_s: Option<f64>,
    rss_mib: Option<f64>,
    store_cpu_s: Option<f64>,
    bytes: u64,
    /// Each round's own result, by round number.
    by_round: BTreeMap<u32, WorkloadResult>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn aggregate(rounds: &[(u32, WorkloadResult)]) -> Agg {
    let rs: Vec<&WorkloadResult> = rounds.iter().map(|(_, r)| r).collect();
    let m = |f: &dyn Fn(&WorkloadResult) -> f64| median(rs.iter().map(|r| f(r)).collect());
    let cpus: Vec<f64> = rs.iter().filter_map(|r| r.server_cpu_s).collect();
    let store_cpus: Vec<f64> = rs.iter().filter_map(|r| r.store_cpu_s).collect();
    let rss: Vec<f64> = rs
        .iter()
        .filter_map(|r| r.server_peak_rss_kib.map(|k| k as f64 / 1024.0))
        .collect();
    Agg {
        rounds: rs.len(),
        ops: rs.iter().map(|r| r.ops).sum(),
        errors: rs.iter().map(|r| r.errors).sum(),
        wall_s: m(&|r| r.wall_s),
        ops_per_s: m(&|r| r.ops_per_s),
        mib_per_s: m(&|r| r.mib_per_s),
        p50: m(&|r| r.p50_ms),
        p90: m(&|r| r.p90_ms),
        p99: m(&|r| r.p99_ms),
        cpu_s: (!cpus.is_empty()).then(|| median(cpus)),
        store_cpu_s: (!store_cpus.is_empty()).then(|| median(store_cpus)),
        // Peak is the worst round, not the median.
        rss_mib: rss.into_iter().reduce(f64::max),
        bytes: rs.iter().map(|r| r.bytes).max().unwrap_or(0),
        by_round: rounds.iter().cloned().collect(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Metric {
    MibPerS,
    OpsPerS,
    /// Lower is better: wall time of the phase.
    Wall,
    /// Lower is better: median latency of one (full) listing.
    P50,
    /// Lower is better: tail latency of a load beside another.
    P99,
}

fn metric(workload: &str) -> Metric {
    match workload {
        w if w.starts_with("hot-get-under") => Metric::P99,
        "cold-pull" | "warm-pull" => Metric::MibPerS,
        w if w.starts_with("large") || w.starts_with("chunked") => Metric::MibPerS,
        w if w.starts_with("small") || w == "lists-setup" => Metric::Wall,
        w if w.starts_with("hot") => Metric::OpsPerS,
        _ => Metric::P50,
    }
}

impl Agg {
    /// The workload's headline number and a "higher is better" score.
    fn headline(&self, m: Metric) -> (f64, f64) {
        match m {
            Metric::MibPerS => (self.mib_per_s, self.mib_per_s),
            Metric::OpsPerS => (self.ops_per_s, self.ops_per_s),
            Metric::Wall => (self.wall_s, 1.0 / self.wall_s.max(1e-9)),
            Metric::P50 => (self.p50, 1.0 / self.p50.max(1e-9)),
            Metric::P99 => (self.p99, 1.0 / self.p99.max(1e-9)),
        }
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::MibPerS => "MiB/s",
        Metric::OpsPerS => "req/s",
        Metric::Wall => "wall s",
        Metric::P50 => "p50 ms (one listing)",
        Metric::P99 => "p99 ms",
    }
}

const ORDER: &[&str] = &[
    "large-push",
    "large-pull",
    "large-pull-raw",
    "chunked-upload",
    "chunked-upload-1m",
    "chunked-upload-64m",
    "small-push",
    "small-pull",
    "hot-get",
    "hot-head",
    "lists-setup",
    "catalog-page-n100",
    "catalog-full-n100",
    "catalog-full-n1000",
    "catalog-full",
    "tags-page-n100",
    "tags-full-n100",
    "tags-full-n1000",
    "tags-full",
    "cold-pull",
    "hot-get-under-cold-pull",
    "warm-pull",
    "hot-get-under-warm-pull",
];

type Table = BTreeMap<String, BTreeMap<String, Agg>>;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut raw: BTreeMap<(String, String), Vec<(u32, WorkloadResult)>> = BTreeMap::new();
    for f in &args.files {
        let run: RunResult = serde_json::from_slice(
            &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("parsing {}", f.display()))?;
        for r in run.results {
            raw.entry((run.server.clone(), r.workload.clone()))
                .or_default()
                .push((run.round, r));
        }
    }
    let mut table: Table = BTreeMap::new();
    for ((server, workload), rs) in &raw {
        table
            .entry(workload.clone())
            .or_default()
            .insert(server.clone(), aggregate(rs));
    }
    let limits: BTreeMap<String, f64> = args
        .limits
        .iter()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    let peers: Vec<String> = args.peers.split(',').map(str::to_string).collect();
    let mut servers = vec![args.subject.clone()];
    servers.extend(peers.iter().cloned());
    servers.push(args.ceiling.clone());
    // Only servers with results (no empty legend entry for a missing ceiling).
    servers.retain(|s| table.values().any(|row| row.contains_key(s)));

    let mut md = String::new();
    write_tables(&mut md, &table, &servers, &args.subject)?;
    if !args.write_amp.is_empty() {
        crate::wamp::table(&mut md, &args.write_amp, &servers)?;
    }
    if !args.no_targets {
        write_targets(&mut md, &table, args, &peers, &limits)?;
    }
    std::fs::write(&args.out, md).with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(c) = &args.chart {
        chart(c, &table, &servers).with_context(|| format!("drawing {}", c.display()))?;
    }
    Ok(())
}

fn workloads_in(table: &Table) -> Vec<String> {
    let mut ws: Vec<String> = ORDER
        .iter()
        .filter(|w| table.contains_key(**w))
        .map(|w| w.to_string())
        .collect();
    ws.extend(
        table
            .keys()
            .filter(|k| !ORDER.contains(&k.as_str()))
            .cloned(),
    );
    ws
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

fn write_tables(
    md: &mut String,
    table: &Table,
    servers: &[String],
    subject: &str,
) -> anyhow::Result<()> {
    // The stores' CPU only when it was recorded (PostgreSQL + S3 runs).
    let stores = table
        .values()
        .any(|row| row.values().any(|a| a.store_cpu_s.is_some()));
    for w in workloads_in(table) {
        let row = &table[&w];
        let m = metric(&w);
        writeln!(md, "\n### {w}\n")?;
        writeln!(
            md,
            "| server | {} | {subject} vs this | ops | errors | MiB/s | req/s | p50 ms | p90 ms | p99 ms | server CPU s |{} peak RSS MiB | rounds |",
            metric_name(m),
            if stores { " store CPU s |" } else { "" }
        )?;
        writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}---:|---:|",
            if stores { "---:|" } else { "" }
        )?;
        let subj = row.get(subject).map(|a| a.headline(m).1);
        for s in servers {
            let Some(a) = row.get(s) else { continue };
            let (head, score) = a.headline(m);
            let ratio = subj.map_or("-".into(), |b| format!("{:.2}x", b / score.max(1e-12)));
            let store = if stores {
                format!(" {} |", opt(a.store_cpu_s, 2))
            } else {
                String::new()
            };
            writeln!(
                md,
                "| {s} | {head:.2} | {ratio} | {} | {} | {:.1} | {:.1} | {:.3} | {:.3} | {:.3} | {} |{store} {} | {} |",
                a.ops,
                a.errors,
                a.mib_per_s,
                a.ops_per_s,
                a.p50,
                a.p90,
                a.p99,
                opt(a.cpu_s, 2),
                opt(a.rss_mib, 1),
                a.rounds
            )?;
        }
    }
    Ok(())
}

fn write_targets(
    md: &mut String,
    table: &Table,
    args: &Args,
    peers: &[String],
    limits: &BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let get = |w: &str, s: &str| table.get(w).and_then(|r| r.get(s)).cloned();
    let subj = |w: &str| get(w, &args.subject);
    // The best peer for a workload by its headline score.
    let best_peer = |w: &str| -> Option<(String, Agg)> {
        let m = metric(w);
        peers
            .iter()
            .filter_map(|p| get(w, p).map(|a| (p.clone(), a)))
            .max_by(|a, b| a.1.headline(m).1.total_cmp(&b.1.headline(m).1))
    };
    let mut rows: Vec<(String, String, Option<bool>)> = Vec::new();
    let verdict = |ok: bool| Some(ok);

    if let (Some(b), Some((p, d))) = (subj("large-push"), best_peer("large-push")) {
        let need = 1.5 * d.mib_per_s;
        rows.push((
            "large-blob push ≥ 1.5x the faster distribution".into(),
            format!(
                "{:.0} MiB/s vs {p} {:.0} MiB/s (need {need:.0}): {:.2}x",
                b.mib_per_s,
                d.mib_per_s,
                b.mib_per_s / d.mib_per_s.max(1e-9)
            ),
            verdict(b.mib_per_s >= need),
        ));
        if let Some(disk) = limits.get("disk_fsync") {
            rows.push((
                "large-blob push ≥ 80% of the fsync disk limit".into(),
                format!(
                    "{:.0} MiB/s vs disk {disk:.0} MiB/s: {:.0}%",
                    b.mib_per_s,
                    100.0 * b.mib_per_s / disk
                ),
                verdict(b.mib_per_s >= 0.8 * disk),
            ));
        }
    }
    if let (Some(b), Some(n)) = (subj("large-pull-raw"), get("large-pull-raw", &args.ceiling)) {
        rows.push((
            format!(
                "large-blob pull ≥ 90% of {} (same client, same file size)",
                args.ceiling
            ),
            format!(
                "{:.0} MiB/s vs {:.0} MiB/s: {:.0}%",
                b.mib_per_s,
                n.mib_per_s,
                100.0 * b.mib_per_s / n.mib_per_s.max(1e-9)
            ),
            verdict(b.mib_per_s >= 0.9 * n.mib_per_s),
        ));
    }
    if let Some(b) = subj("large-pull-raw") {
        let per_gib = |a: &Agg| {
            a.cpu_s
                .map(|c| c / (a.bytes.max(1) as f64 / (1u64 << 30) as f64))
        };
        let peer_min = peers
            .iter()
            .filter_map(|p| {
                get("large-pull-raw", p).and_then(|a| per_gib(&a).map(|c| (p.clone(), c)))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(bc), Some((p, pc))) = (per_gib(&b), peer_min) {
            rows.push((
                "large-blob pull server CPU s/GiB ≤ half of distribution's".into(),
                format!("{bc:.3} s/GiB vs {p} {pc:.3} s/GiB"),
                verdict(bc <= 0.5 * pc),
            ));
        }
    }
    if let (Some(b), Some(n)) = (subj("hot-get"), get("hot-get", &args.ceiling)) {
        rows.push((
            format!("hot manifest GET ≥ 50% of {} req/s", args.ceiling),
            format!(
                "{:.0} req/s vs {:.0} req/s: {:.0}%",
                b.ops_per_s,
                n.ops_per_s,
                100.0 * b.ops_per_s / n.ops_per_s.max(1e-9)
            ),
            verdict(b.ops_per_s >= 0.5 * n.ops_per_s),
        ));
        rows.push((
            "hot manifest GET p99 < 10 ms".into(),
            format!("p99 {:.2} ms", b.p99),
            verdict(b.p99 < 10.0),
        ));
    }
    if let (Some(b), Some((p, d))) = (subj("small-push"), best_peer("small-push")) {
        rows.push((
            "small-image push wall time ≤ half of the faster distribution".into(),
            format!("{:.3} s vs {p} {:.3} s", b.wall_s, d.wall_s),
            verdict(b.wall_s <= 0.5 * d.wall_s),
        ));
    }
    let rss = ["large-push", "large-pull", "large-pull-raw"]
        .iter()
        .filter_map(|w| subj(w).and_then(|a| a.rss_mib))
        .reduce(f64::max);
    if let Some(r) = rss {
        rows.push((
            "peak RSS < 64 MiB during the 1 GiB transfer".into(),
            format!("{r:.1} MiB (max VmHWM over large-push/pull)"),
            verdict(r < 64.0),
        ));
    }
    for w in ["catalog-full", "catalog-full-n1000"] {
        if let Some(b) = subj(w) {
            rows.push((
                format!("catalog of all repositories < 50 ms ({w})"),
                format!("p50 {:.1} ms, p99 {:.1} ms", b.p50, b.p99),
                verdict(b.p50 < 50.0),
            ));
        }
    }
    target_table(md, "Targets (issue 13, medians over rounds)", rows)?;
    target_table(
        md,
        "Targets (issue 26, every round)",
        every_round_targets(table, &args.subject, peers),
    )
}

fn target_table(
    md: &mut String,
    title: &str,
    rows: Vec<(String, String, Option<bool>)>,
) -> anyhow::Result<()> {
    writeln!(md, "\n## {title}\n")?;
    writeln!(md, "| target | measured | met? |")?;
    writeln!(md, "|---|---|---|")?;
    for (t, m, ok) in rows {
        let v = match ok {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "-",
        };
        writeln!(md, "| {t} | {m} | {v} |")?;
    }
    Ok(())
}

/// The targets that must hold in each round, not only in the medians: the
/// subject against every peer of the same round.
fn every_round_targets(
    table: &Table,
    subject: &str,
    peers: &[String],
) -> Vec<(String, String, Option<bool>)> {
    let mut rows = Vec::new();
    // (workload, target, check of (subject, a peer) in one round)
    type Check = fn(&WorkloadResult, &WorkloadResult) -> (String, bool);
    let vs_peer: [(&str, &str, Check); 5] = [
        (
            "chunked-upload",
            "chunked upload (5 MiB PATCHes) ≥ 1.5x the fastest peer",
            |b, p| {
                let x = b.mib_per_s / p.mib_per_s.max(1e-9);
                (
                    format!("{:.0} vs {:.0} MiB/s ({x:.2}x)", b.mib_per_s, p.mib_per_s),
                    x >= 1.5,
                )
            },
        ),
        (
            "tags-full-n100",
            "tags-full-n100: one whole listing ≤ the fastest peer's",
            whole_listing,
        ),
        (
            "tags-full-n100",
            "tags-full-n100: time per request ≤ the fastest peer's",
            per_request,
        ),
        (
            "catalog-full-n100",
            "catalog-full-n100: one whole listing ≤ the fastest peer's",
            whole_listing,
        ),
        (
            "catalog-full-n100",
            "catalog-full-n100: time per request ≤ the fastest peer's",
            per_request,
        ),
    ];
    for (w, target, check) in vs_peer {
        let Some(row) = table.get(w) else { continue };
        let Some(subj) = row.get(subject) else {
            continue;
        };
        let mut measured = Vec::new();
        let mut all = true;
        // Against every peer of the round (so against the fastest by this
        // target's own measure).
        for (round, b) in &subj.by_round {
            for p in peers {
                let Some(r) = row.get(p).and_then(|a| a.by_round.get(round)) else {
                    continue;
                };
                let (text, ok) = check(b, r);
                all &= ok;
                measured.push(format!("r{round} vs {p}: {text}"));
            }
        }
        if !measured.is_empty() {
            rows.push((target.to_string(), measured.join("; "), Some(all)));
        }
    }
    if let Some(subj) = table
        .get("hot-get-under-cold-pull")
        .and_then(|r| r.get(subject))
    {
        let ok = subj.by_round.values().all(|r| r.p99_ms < 10.0 && r.ops > 0);
        let measured: Vec<String> = subj
            .by_round
            .iter()
            .map(|(round, r)| format!("r{round}: p99 {:.2} ms", r.p99_ms))
            .collect();
        rows.push((
            "hot GET p99 < 10 ms while the cold blobs are pulled".into(),
            measured.join("; "),
            Some(ok),
        ));
    }
    // Reported beside the peers, no target.
    for w in ["cold-pull", "chunked-upload-1m", "chunked-upload-64m"] {
        let Some(row) = table.get(w) else { continue };
        let servers = std::iter::once(subject).chain(peers.iter().map(String::as_str));
        let measured: Vec<String> = servers
            .filter_map(|s| row.get(s).map(|a| format!("{s} {:.0} MiB/s", a.mib_per_s)))
            .collect();
        rows.push((
            format!("{w} (median; reported, no target)"),
            measured.join(", "),
            None,
        ));
    }
    rows
}

/// One full listing (p50), with the requests it took.
fn whole_listing(b: &WorkloadResult, p: &WorkloadResult) -> (String, bool) {
    (
        format!(
            "{:.1} ms in {} requests vs {:.1} ms in {}",
            b.p50_ms,
            requests_per_listing(b),
            p.p50_ms,
            requests_per_listing(p)
        ),
        b.p50_ms <= p.p50_ms,
    )
}

/// A listing's p50 over the requests it took: what one page costs.
fn per_request(b: &WorkloadResult, p: &WorkloadResult) -> (String, bool) {
    let per = |r: &WorkloadResult| r.p50_ms / requests_per_listing(r).max(1) as f64;
    (
        format!("{:.3} vs {:.3} ms", per(b), per(p)),
        per(b) <= per(p),
    )
}

fn requests_per_listing(r: &WorkloadResult) -> u64 {
    r.requests / r.ops.max(1)
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Horizontal grouped bars: each server's score on each workload, relative to
/// the best server on that workload (1.0 = best; higher is better).
fn chart(path: &PathBuf, table: &Table, servers: &[String]) -> anyhow::Result<()> {
    let font_bytes = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| anyhow!("no TrueType font found (tried {FONT_PATHS:?})"))?;
    // register_font wants 'static bytes; the process is short-lived.
    let font_bytes: &'static [u8] = Box::leak(font_bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font_bytes)
        .map_err(|_| anyhow!("invalid font"))?;

    let ws = workloads_in(table);
    let bar_h = 12i32;
    let group_h = bar_h * servers.len() as i32 + 14;
    let (left, top, width) = (190i32, 70i32, 1100i32);
    let plot_w = width - left - 120;
    let height = top + group_h * ws.len() as i32 + 20;
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let e = |e| anyhow!("plotting: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let title = ("sans-serif", 20).into_font();
    let small = ("sans-serif", 13).into_font();
    root.draw(&Text::new(
        "berth-bench: each server relative to the best on each workload (longer is better)",
        (10, 10),
        title,
    ))
    .map_err(e)?;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(150, 150, 150),
        RGBColor(148, 103, 189),
    ];
    for (si, s) in servers.iter().enumerate() {
        let x = 10 + si as i32 * 200;
        let c = colors[si % colors.len()];
        root.draw(&Rectangle::new([(x, 40), (x + 14, 54)], c.filled()))
            .map_err(e)?;
        root.draw(&Text::new(s.clone(), (x + 20, 40), small.clone()))
            .map_err(e)?;
    }
    for (wi, w) in ws.iter().enumerate() {
        let y0 = top + wi as i32 * group_h;
        let m = metric(w);
        let row = &table[w];
        let best = row
            .values()
            .map(|a| a.headline(m).1)
            .fold(0.0f64, f64::max)
            .max(1e-12);
        root.draw(&Text::new(
            w.clone(),
            (10, y0 + group_h / 2 - 8),
            small.clone(),
        ))
        .map_err(e)?;
        for (si, s) in servers.iter().enumerate() {
            let Some(a) = row.get(s) else { continue };
            let (head, score) = a.headline(m);
            let y = y0 + si as i32 * bar_h;
            let len = ((score / best) * plot_w as f64).round().max(1.0) as i32;
            let c = colors[si % colors.len()];
            root.draw(&Rectangle::new(
                [(left, y), (left + len, y + bar_h - 2)],
                c.filled(),
            ))
            .map_err(e)?;
            let label = format!(
                "{head:.1} {}",
                metric_name(m).split(' ').next().unwrap_or("")
            );
            root.draw(&Text::new(
                label,
                (left + len + 4, y - 1),
                ("sans-serif", 11).into_font(),
            ))
            .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        workload: &str,
        mib_per_s: f64,
        p50_ms: f64,
        p99_ms: f64,
        requests: u64,
    ) -> WorkloadResult {
        WorkloadResult {
            workload: workload.into(),
            ops: 1,
            errors: 0,
            bytes: 0,
            requests,
            wall_s: 1.0,
            ops_per_s: 1.0,
            mib_per_s,
            p50_ms,
            p90_ms: p99_ms,
            p99_ms,
            max_ms: p99_ms,
            server_cpu_s: None,
            server_peak_rss_kib: None,
            store_cpu_s: None,
            first_error: None,
        }
    }

    /// `rounds` per server: (server, [(round, result)]).
    fn table(workload: &str, rounds: &[(&str, Vec<(u32, WorkloadResult)>)]) -> Table {
        let mut t = Table::new();
        for (server, rs) in rounds {
            t.entry(workload.to_string())
                .or_default()
                .insert(server.to_string(), aggregate(rs));
        }
        t
    }

    fn verdict(rows: &[(String, String, Option<bool>)], starts: &str) -> Option<bool> {
        rows.iter()
            .find(|(t, _, _)| t.starts_with(starts))
            .and_then(|(_, _, ok)| *ok)
    }

    #[test]
    fn a_target_must_hold_in_every_round_not_only_in_the_median() {
        let peers = vec!["dist".to_string()];
        // Berth 2x distribution in rounds 1 and 3, 1.2x in round 2: the
        // median is met, one round is not.
        let t = table(
            "chunked-upload",
            &[
                (
                    "berth",
                    vec![
                        (1, result("chunked-upload", 400.0, 0.0, 0.0, 0)),
                        (2, result("chunked-upload", 240.0, 0.0, 0.0, 0)),
                        (3, result("chunked-upload", 400.0, 0.0, 0.0, 0)),
                    ],
                ),
                (
                    "dist",
                    (1..=3)
                        .map(|r| (r, result("chunked-upload", 200.0, 0.0, 0.0, 0)))
                        .collect(),
                ),
            ],
        );
        let rows = every_round_targets(&t, "berth", &peers);
        assert_eq!(verdict(&rows, "chunked upload"), Some(false), "{rows:?}");

        let t = table(
            "chunked-upload",
            &[
                (
                    "berth",
                    vec![(1, result("chunked-upload", 400.0, 0.0, 0.0, 0))],
                ),
                (
                    "dist",
                    vec![(1, result("chunked-upload", 200.0, 0.0, 0.0, 0))],
                ),
            ],
        );
        let rows = every_round_targets(&t, "berth", &peers);
        assert_eq!(verdict(&rows, "chunked upload"), Some(true), "{rows:?}");
    }

    #[test]
    fn a_listing_is_judged_whole_and_per_request() {
        // 100 pages in 30 ms against one unpaged answer in 6 ms: slower
        // whole, faster per request.
        let t = table(
            "tags-full-n100",
            &[
                (
                    "berth",
                    vec![(1, result("tags-full-n100", 0.0, 30.0, 31.0, 100))],
                ),
                ("dr", vec![(1, result("tags-full-n100", 0.0, 6.0, 7.0, 1))]),
            ],
        );
        let rows = every_round_targets(&t, "berth", &["dr".to_string()]);
        assert_eq!(
            verdict(&rows, "tags-full-n100: one whole"),
            Some(false),
            "{rows:?}"
        );
        assert_eq!(
            verdict(&rows, "tags-full-n100: time per request"),
            Some(true),
            "{rows:?}"
        );
    }

    #[test]
    fn hot_get_beside_cold_pulls_needs_p99_under_10_ms_each_round() {
        let w = "hot-get-under-cold-pull";
        let t = table(
            w,
            &[(
                "berth",
                vec![
                    (1, result(w, 0.0, 1.0, 9.0, 0)),
                    (2, result(w, 0.0, 1.0, 10.5, 0)),
                ],
            )],
        );
        let rows = every_round_targets(&t, "berth", &[]);
        assert_eq!(verdict(&rows, "hot GET p99"), Some(false), "{rows:?}");
        assert_eq!(metric(w), Metric::P99);
        assert_eq!(metric("small-pull"), Metric::Wall);
        assert_eq!(metric("cold-pull"), Metric::MibPerS);
    }
}
