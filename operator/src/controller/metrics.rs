//! The operator's own metrics (Prometheus text format): reconciles, errors
//! and durations per controller.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct Counts {
    reconciles: u64,
    errors: BTreeMap<&'static str, u64>,
    seconds_sum: f64,
    /// Consecutive failures, for the error backoff.
    failing: u32,
}

#[derive(Default)]
pub struct Metrics {
    by_controller: Mutex<BTreeMap<&'static str, Counts>>,
}

impl Metrics {
    pub fn reconciled(&self, controller: &'static str, took: Duration) {
        if let Ok(mut m) = self.by_controller.lock() {
            let c = m.entry(controller).or_default();
            c.reconciles += 1;
            c.seconds_sum += took.as_secs_f64();
            c.failing = 0;
        }
    }

    /// Counts an error; returns how many reconciles failed in a row.
    pub fn failed(&self, controller: &'static str, error: &'static str) -> u32 {
        match self.by_controller.lock() {
            Ok(mut m) => {
                let c = m.entry(controller).or_default();
                *c.errors.entry(error).or_default() += 1;
                c.failing = c.failing.saturating_add(1);
                c.failing
            }
            Err(_) => 1,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP berth_operator_reconciles_total Reconciles that finished, by controller.\n",
        );
        out.push_str("# TYPE berth_operator_reconciles_total counter\n");
        let Ok(m) = self.by_controller.lock() else {
            return out;
        };
        for (ctl, c) in m.iter() {
            out.push_str(&format!(
                "berth_operator_reconciles_total{{controller=\"{ctl}\"}} {}\n",
                c.reconciles
            ));
        }
        out.push_str("# HELP berth_operator_reconcile_errors_total Reconciles that failed, by controller and error.\n");
        out.push_str("# TYPE berth_operator_reconcile_errors_total counter\n");
        for (ctl, c) in m.iter() {
            for (err, n) in &c.errors {
                out.push_str(&format!(
                    "berth_operator_reconcile_errors_total{{controller=\"{ctl}\",error=\"{err}\"}} {n}\n"
                ));
            }
        }
        out.push_str("# HELP berth_operator_reconcile_duration_seconds_sum Time spent in reconciles that finished.\n");
        out.push_str("# TYPE berth_operator_reconcile_duration_seconds_sum counter\n");
        for (ctl, c) in m.iter() {
            out.push_str(&format!(
                "berth_operator_reconcile_duration_seconds_sum{{controller=\"{ctl}\"}} {}\n",
                c.seconds_sum
            ));
        }
        out
    }
}
