//! The operator's own metrics (Prometheus text format): reconciles, errors
//! and durations per controller. Names follow Prometheus conventions:
//! `berth_operator_` prefix, `_total` counters, `_seconds` durations.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The controllers, so that their series exist (at zero) from the start.
const CONTROLLERS: [&str; 2] = ["registry", "repository"];
/// Every `Error::metric_label`, exported at zero from the start so that
/// error-rate queries have series before the first error.
const ERRORS: [&str; 6] = super::Error::METRIC_LABELS;

pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    /// Consecutive failures per controller, for the error backoff.
    failing: Mutex<BTreeMap<&'static str, u32>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "berth_operator_reconciles_total",
                "Reconciles that finished, by controller.",
            ),
            &["controller"],
        )
        .expect("static metric definition");
        let errors = IntCounterVec::new(
            Opts::new(
                "berth_operator_reconcile_errors_total",
                "Reconciles that failed, by controller and error.",
            ),
            &["controller", "error"],
        )
        .expect("static metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "berth_operator_reconcile_duration_seconds",
                "Time spent in reconciles that finished.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["controller"],
        )
        .expect("static metric definition");
        let registry = Registry::new();
        for c in [&reconciles, &errors] {
            registry
                .register(Box::new(c.clone()))
                .expect("distinct metric names");
        }
        registry
            .register(Box::new(duration.clone()))
            .expect("distinct metric names");
        for ctl in CONTROLLERS {
            reconciles.with_label_values(&[ctl]);
            duration.with_label_values(&[ctl]);
            for err in ERRORS {
                errors.with_label_values(&[ctl, err]);
            }
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            failing: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, controller: &'static str, took: Duration) {
        self.reconciles.with_label_values(&[controller]).inc();
        self.duration
            .with_label_values(&[controller])
            .observe(took.as_secs_f64());
        if let Ok(mut f) = self.failing.lock() {
            f.insert(controller, 0);
        }
    }

    /// Counts an error; returns how many reconciles failed in a row.
    pub fn failed(&self, controller: &'static str, error: &'static str) -> u32 {
        self.errors.with_label_values(&[controller, error]).inc();
        match self.failing.lock() {
            Ok(mut f) => {
                let n = f.entry(controller).or_default();
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_exist_from_the_start_and_count() {
        let m = Metrics::default();
        let text = m.render();
        assert!(text.contains("berth_operator_reconciles_total{controller=\"repository\"} 0"));
        assert!(text.contains(
            "berth_operator_reconcile_errors_total{controller=\"registry\",error=\"kube\"} 0"
        ));
        assert!(text.contains("# TYPE berth_operator_reconcile_duration_seconds histogram"));
        assert_eq!(m.failed("registry", "kube"), 1);
        assert_eq!(m.failed("registry", "render"), 2);
        m.reconciled("registry", Duration::from_millis(20));
        assert_eq!(m.failed("registry", "kube"), 1);
        let text = m.render();
        assert!(text.contains(
            "berth_operator_reconcile_errors_total{controller=\"registry\",error=\"kube\"} 2"
        ));
        assert!(text.contains("berth_operator_reconciles_total{controller=\"registry\"} 1"));
        assert!(text.contains(
            "berth_operator_reconcile_duration_seconds_count{controller=\"registry\"} 1"
        ));
    }
}
