//! Latency histograms and the per-workload result record.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies (in microseconds), operation and error counts of one workload.
pub struct Recorder {
    hist: Histogram<u64>,
    pub ops: u64,
    pub errors: u64,
    pub bytes: u64,
    /// HTTP requests made, where a workload's operation is several (a
    /// listing that follows Link headers); 0 where it does not count them.
    pub requests: u64,
    pub first_error: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            // 1 µs .. 1 h, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ops: 0,
            errors: 0,
            bytes: 0,
            requests: 0,
            first_error: None,
        }
    }
}

impl Recorder {
    pub fn ok(&mut self, d: Duration) {
        self.ops += 1;
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        // Within bounds by the clamp above.
        let _ = self.hist.record(us);
    }

    pub fn err(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        let _ = self.hist.add(&other.hist);
        self.ops += other.ops;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.requests += other.requests;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn pct_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// The result record; `wall` is the measured phase's elapsed time.
    pub fn finish(&self, workload: &str, wall: Duration) -> WorkloadResult {
        let secs = wall.as_secs_f64().max(1e-9);
        WorkloadResult {
            workload: workload.to_string(),
            ops: self.ops,
            errors: self.errors,
            bytes: self.bytes,
            requests: self.requests,
            wall_s: secs,
            ops_per_s: self.ops as f64 / secs,
            mib_per_s: self.bytes as f64 / (1024.0 * 1024.0) / secs,
            p50_ms: self.pct_ms(0.50),
            p90_ms: self.pct_ms(0.90),
            p99_ms: self.pct_ms(0.99),
            max_ms: if self.hist.is_empty() {
                0.0
            } else {
                self.hist.max() as f64 / 1000.0
            },
            server_cpu_s: None,
            server_peak_rss_kib: None,
            store_cpu_s: None,
            first_error: self.first_error.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub workload: String,
    pub ops: u64,
    pub errors: u64,
    pub bytes: u64,
    /// See `Recorder::requests` (absent in older result files).
    #[serde(default)]
    pub requests: u64,
    pub wall_s: f64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU seconds (user + system) the server process spent during the phase.
    pub server_cpu_s: Option<f64>,
    /// Peak resident set of the server process during the phase (VmHWM).
    pub server_peak_rss_kib: Option<u64>,
    /// CPU seconds the stores behind the server (PostgreSQL, the S3 server)
    /// spent during the phase, when their PIDs were given.
    #[serde(default)]
    pub store_cpu_s: Option<f64>,
    pub first_error: Option<String>,
}

/// One `berth-bench run`: every workload against one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub server: String,
    pub round: u32,
    pub base: String,
    pub quick: bool,
    pub results: Vec<WorkloadResult>,
}
