//! Prometheus metrics, served on their own listen address (`/metrics`).
//! Names follow Prometheus conventions: `berth_` prefix, `_total` counters.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};

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

/// Touches every metric so that it is exported (at zero) from the start.
pub fn init() {
    for endpoint in ["registry", "token"] {
        AUTH_FAILURES.with_label_values(&[endpoint]);
        AUTH_RATE_LIMITED.with_label_values(&[endpoint]);
    }
}

async fn render() -> impl IntoResponse {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&REGISTRY.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    ([(CONTENT_TYPE, encoder.format_type().to_string())], buf)
}

pub fn router() -> Router {
    Router::new().route("/metrics", get(render))
}
