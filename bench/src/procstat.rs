//! Server-side cost of a phase, read from /proc: CPU seconds (utime + stime)
//! and peak resident memory (VmHWM, reset through clear_refs before the phase);
//! and the CPU seconds of the stores behind it (PostgreSQL, the S3 server),
//! each counted with its children, those that exited included.

use std::fs;

/// Kernel clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

pub struct Probe {
    pids: Vec<u32>,
    cpu0: f64,
    stores: Vec<u32>,
    store_cpu0: f64,
}

impl Probe {
    /// Starts measuring the server processes `pids` (no-op when empty).
    pub fn start(pids: &[u32]) -> Probe {
        Probe::with_stores(pids, &[])
    }

    /// Starts measuring the server processes `pids` (several: replicas of
    /// one server, summed) and the process trees of `stores`.
    pub fn with_stores(pids: &[u32], stores: &[u32]) -> Probe {
        for p in pids {
            // "5" resets the peak RSS (VmHWM) to the current RSS.
            let _ = fs::write(format!("/proc/{p}/clear_refs"), "5");
        }
        Probe {
            pids: pids.to_vec(),
            cpu0: pids.iter().filter_map(|&p| cpu_seconds(p)).sum(),
            stores: stores.to_vec(),
            store_cpu0: tree_cpu_seconds(stores),
        }
    }

    /// CPU seconds of the stores since start (`None` without stores).
    pub fn store_cpu(&self) -> Option<f64> {
        (!self.stores.is_empty()).then(|| tree_cpu_seconds(&self.stores) - self.store_cpu0)
    }

    /// `(cpu seconds since start, peak RSS KiB since start)`, each summed
    /// over the server processes (the peak RSS: the sum of their peaks).
    pub fn finish(&self) -> (Option<f64>, Option<u64>) {
        if self.pids.is_empty() {
            return (None, None);
        }
        let cpu: Option<Vec<f64>> = self.pids.iter().map(|&p| cpu_seconds(p)).collect();
        let rss: Option<Vec<u64>> = self.pids.iter().map(|&p| status_kib(p, "VmHWM:")).collect();
        (
            cpu.map(|c| c.iter().sum::<f64>() - self.cpu0),
            rss.map(|r| r.iter().sum()),
        )
    }
}

/// The numeric fields of /proc/<pid>/stat from field 4 (ppid) on: field N
/// of the whole line is index N - 4.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // The state is a letter; the rest are numbers (some may be negative).
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse::<i64>().map_or(0, |v| v.max(0) as u64))
            .collect(),
    )
}

pub fn cpu_seconds(pid: u32) -> Option<f64> {
    // utime and stime are fields 14 and 15 of the whole line.
    let f = stat_fields(pid)?;
    Some((f.get(10)? + f.get(11)?) as f64 / TICKS_PER_S)
}

/// utime + stime + cutime + cstime (fields 14-17): the process and its
/// children that were waited for.
fn with_children(f: &[u64]) -> f64 {
    f.iter().skip(10).take(4).sum::<u64>() as f64 / TICKS_PER_S
}

/// CPU seconds of each of `roots`, its waited-for children and its
/// children still running (a PostgreSQL backend per connection; one that
/// exits moves into the postmaster's cutime, so a difference of two
/// readings counts it once).
pub fn tree_cpu_seconds(roots: &[u32]) -> f64 {
    if roots.is_empty() {
        return 0.0;
    }
    let mut total: f64 = roots
        .iter()
        .filter_map(|&r| stat_fields(r))
        .map(|f| with_children(&f))
        .sum();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // ppid is field 4 of the whole line.
            if let Some(f) = stat_fields(pid)
                && f.first().is_some_and(|pp| roots.contains(&(*pp as u32)))
            {
                total += with_children(&f);
            }
        }
    }
    total
}

pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
