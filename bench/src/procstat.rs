//! Server-side cost of a phase, read from /proc: CPU seconds (utime + stime)
//! and peak resident memory (VmHWM, reset through clear_refs before the phase).

use std::fs;

/// Kernel clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

pub struct Probe {
    pid: Option<u32>,
    cpu0: f64,
}

impl Probe {
    /// Starts measuring `pid` (no-op when `None`).
    pub fn start(pid: Option<u32>) -> Probe {
        if let Some(p) = pid {
            // "5" resets the peak RSS (VmHWM) to the current RSS.
            let _ = fs::write(format!("/proc/{p}/clear_refs"), "5");
        }
        Probe {
            pid,
            cpu0: pid.and_then(cpu_seconds).unwrap_or(0.0),
        }
    }

    /// `(cpu seconds since start, peak RSS KiB since start)`.
    pub fn finish(&self) -> (Option<f64>, Option<u64>) {
        let Some(p) = self.pid else {
            return (None, None);
        };
        (
            cpu_seconds(p).map(|c| c - self.cpu0),
            status_kib(p, "VmHWM:"),
        )
    }
}

pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line, i.e. 12 and 13 after ")".
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / TICKS_PER_S)
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
