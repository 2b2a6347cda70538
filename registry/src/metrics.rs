//! Prometheus metrics, served on their own listen address (`/metrics`).
//! Names follow Prometheus conventions: `berth_` prefix, `_total` counters,
//! `_seconds` and `_bytes` units.
//!
//! Two kinds: this process's own (HTTP traffic, logins), kept in [`REGISTRY`];
//! and what is stored and what maintenance did, read from the metadata
//! database at each scrape ([`store_metrics`]), because several replicas and
//! the `berth gc` CronJob share that database and no single process sees all
//! of it.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::meta::{MetaStore, StoreStats};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // Registration only fails for duplicate names, which are static here.
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

/// Failed logins, by where they happened (`registry` or `token`).
pub static AUTH_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_auth_failures_total",
                "Failed logins (wrong or unknown credentials).",
            ),
            &["endpoint"],
        )
        .expect("static metric definition"),
    )
});

/// Logins refused by the failed-login rate limit.
pub static AUTH_RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_auth_rate_limited_total",
                "Logins refused because of too many failures.",
            ),
            &["endpoint"],
        )
        .expect("static metric definition"),
    )
});

/// HTTP requests that finished (response body sent or connection gone).
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_http_requests_total",
                "HTTP requests, by method, route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition"),
    )
});

/// From the request's arrival to the end of its response body.
pub static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "berth_http_request_duration_seconds",
                "Time from a request's arrival until its response body was sent.",
            )
            // Up to minutes: blob uploads and downloads stream large bodies.
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                300.0,
            ]),
            &["method", "route"],
        )
        .expect("static metric definition"),
    )
});

/// Request body bytes read, counted as they stream in.
pub static HTTP_REQUEST_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_http_request_bytes_total",
                "Request body bytes received, by route template.",
            ),
            &["route"],
        )
        .expect("static metric definition"),
    )
});

/// Response body bytes written, counted as they stream out.
pub static HTTP_RESPONSE_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_http_response_bytes_total",
                "Response body bytes sent, by route template.",
            ),
            &["route"],
        )
        .expect("static metric definition"),
    )
});

pub static HTTP_IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "berth_http_requests_in_flight",
            "HTTP requests being served (until their response body is sent).",
        )
        .expect("static metric definition"),
    )
});

/// Pulls through a mirror, by mirror and result: `hit` (served from the
/// cache, upstream not asked), `revalidated` (a tag checked upstream, still
/// the same), `miss` (fetched upstream), `stale` (the upstream failed and
/// the cached content was served).
pub static MIRROR_PULLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_mirror_pulls_total",
                "Manifest and blob pulls through a mirror, by result.",
            ),
            &["mirror", "result"],
        )
        .expect("static metric definition"),
    )
});

/// Requests a mirror sent to its upstream, by method and status (`error`
/// when no answer came).
pub static MIRROR_UPSTREAM_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_mirror_upstream_requests_total",
                "Requests sent to a mirror's upstream registry.",
            ),
            &["mirror", "method", "status"],
        )
        .expect("static metric definition"),
    )
});

/// Bytes a mirror fetched from its upstream.
pub static MIRROR_UPSTREAM_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_mirror_upstream_bytes_total",
                "Bytes fetched from a mirror's upstream registry.",
            ),
            &["mirror"],
        )
        .expect("static metric definition"),
    )
});

/// Requests refused with 503 because a store (the metadata database, the
/// blob bucket) did not answer, by store (`metadata`, `blobs`).
pub static STORE_UNAVAILABLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_store_unavailable_total",
                "Requests refused because a store (database, bucket) did not answer.",
            ),
            &["store"],
        )
        .expect("static metric definition"),
    )
});

/// Writes refused because a store's disk was full, by store (`metadata`,
/// `blobs`).
pub static STORAGE_FULL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "berth_storage_full_total",
                "Requests refused because the disk of a store was full.",
            ),
            &["store"],
        )
        .expect("static metric definition"),
    )
});

/// Touches every metric so that it is exported (at zero) from the start.
pub fn init() {
    for endpoint in ["registry", "token", "library", "ui"] {
        AUTH_FAILURES.with_label_values(&[endpoint]);
        AUTH_RATE_LIMITED.with_label_values(&[endpoint]);
    }
    for route in crate::http::route::labels() {
        HTTP_REQUEST_BYTES.with_label_values(&[route]);
        HTTP_RESPONSE_BYTES.with_label_values(&[route]);
    }
    for store in ["metadata", "blobs"] {
        STORAGE_FULL.with_label_values(&[store]);
        STORE_UNAVAILABLE.with_label_values(&[store]);
    }
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_DURATION);
    HTTP_IN_FLIGHT.set(0);
}

/// The maintenance kinds whose totals the metadata database keeps.
const MAINTENANCE_KINDS: [&str; 2] = ["gc", "retention"];

/// Metric families for what is stored and what maintenance did, from one
/// reading of the metadata database. `None` (the database did not answer)
/// leaves them out and sets `berth_metadata_up` to 0.
fn store_metrics(stats: Option<&StoreStats>) -> prometheus::Result<Vec<MetricFamily>> {
    let registry = Registry::new();
    let up = IntGauge::new(
        "berth_metadata_up",
        "Whether the metadata database answered this scrape (1) or not (0).",
    )?;
    registry.register(Box::new(up.clone()))?;
    let Some(stats) = stats else {
        up.set(0);
        return Ok(registry.gather());
    };
    up.set(1);

    let gauge = |name: &str, help: &str, value: u64| -> prometheus::Result<()> {
        let g = IntGauge::new(name, help)?;
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(Box::new(g))
    };
    gauge("berth_repositories", "Repositories.", stats.repositories)?;
    gauge("berth_manifests", "Manifests stored.", stats.manifests)?;
    gauge("berth_tags", "Tags.", stats.tags)?;
    gauge("berth_blobs", "Blobs stored.", stats.blobs)?;
    gauge(
        "berth_stored_bytes",
        "Bytes of the blobs stored.",
        stats.blob_bytes,
    )?;
    gauge(
        "berth_uploads_in_progress",
        "Upload sessions started and neither finished nor cancelled.",
        stats.uploads_in_progress,
    )?;

    let runs = IntCounterVec::new(
        Opts::new(
            "berth_maintenance_runs_total",
            "Maintenance runs (gc, retention), by result.",
        ),
        &["kind", "result"],
    )?;
    let deleted = IntCounterVec::new(
        Opts::new(
            "berth_maintenance_deleted_objects_total",
            "Objects maintenance deleted, by kind of run and object.",
        ),
        &["kind", "object"],
    )?;
    let deleted_bytes = IntCounterVec::new(
        Opts::new(
            "berth_maintenance_deleted_bytes_total",
            "Blob bytes maintenance deleted.",
        ),
        &["kind"],
    )?;
    let last_run = GaugeVec::new(
        Opts::new(
            "berth_maintenance_last_run_timestamp_seconds",
            "When the last maintenance run finished (Unix time; 0: never).",
        ),
        &["kind"],
    )?;
    let last_duration = GaugeVec::new(
        Opts::new(
            "berth_maintenance_last_duration_seconds",
            "How long the last maintenance run took.",
        ),
        &["kind"],
    )?;
    // Every kind is exported, at zero before its first run, so that queries
    // over it have series from the start.
    for kind in MAINTENANCE_KINDS {
        let t = stats.maintenance.iter().find(|m| m.kind == kind);
        let get = |f: fn(&crate::meta::MaintenanceTotals) -> u64| t.map(f).unwrap_or(0);
        let failed = get(|m| m.failed_runs);
        runs.with_label_values(&[kind, "ok"])
            .inc_by(get(|m| m.runs).saturating_sub(failed));
        runs.with_label_values(&[kind, "error"]).inc_by(failed);
        for (object, n) in [
            ("blob", get(|m| m.deleted_blobs)),
            ("manifest", get(|m| m.deleted_manifests)),
            ("tag", get(|m| m.deleted_tags)),
        ] {
            deleted.with_label_values(&[kind, object]).inc_by(n);
        }
        deleted_bytes
            .with_label_values(&[kind])
            .inc_by(get(|m| m.deleted_bytes));
        last_run
            .with_label_values(&[kind])
            .set(t.map_or(0.0, |m| m.last_run_unix));
        last_duration
            .with_label_values(&[kind])
            .set(t.map_or(0.0, |m| m.last_duration_seconds));
    }
    registry.register(Box::new(runs))?;
    registry.register(Box::new(deleted))?;
    registry.register(Box::new(deleted_bytes))?;
    registry.register(Box::new(last_run))?;
    registry.register(Box::new(last_duration))?;
    Ok(registry.gather())
}

async fn render(State(meta): State<Arc<dyn MetaStore>>) -> impl IntoResponse {
    let stats = match meta.stats().await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                error = crate::report::chain(&e),
                "metrics: reading the metadata database failed"
            );
            None
        }
    };
    let mut families = REGISTRY.gather();
    match store_metrics(stats.as_ref()) {
        Ok(store) => families.extend(store),
        Err(e) => tracing::error!(error = %e, "building the stored-object metrics failed"),
    }
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&families, &mut buf) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    ([(CONTENT_TYPE, encoder.format_type().to_string())], buf)
}

/// `/metrics`, reading stored-object figures from `meta` at each scrape.
pub fn router(meta: Arc<dyn MetaStore>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(meta)
}
