//! The operator's own HTTP endpoint (`--metrics-addr`): `/metrics` in the
//! Prometheus text format, `/healthz` and `/readyz` for the kubelet.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::controller::metrics::Metrics;

/// The routes; every response closes its connection (scrapes are rare, and
/// clients that read to the end of the stream get an end).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .layer(axum::middleware::map_response(close))
        .with_state(metrics)
}

/// Serves [`router`] on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    axum::serve(listener, router(metrics)).await
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

async fn ok() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain")], "ok\n")
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "not found\n",
    )
}

async fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn metrics_health_and_not_found_on_a_real_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(Metrics::default())));

        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("content-type: text/plain; version=0.0.4"), "{m}");
        assert!(m.contains("connection: close"), "{m}");
        assert!(
            m.contains("berth_operator_reconciles_total{controller=\"registry\"} 0"),
            "{m}"
        );
        for path in ["/healthz", "/readyz"] {
            let h = get(addr, path).await;
            assert!(h.starts_with("HTTP/1.1 200"), "{h}");
            assert!(h.ends_with("\r\n\r\nok\n"), "{h}");
        }
        let n = get(addr, "/nope").await;
        assert!(n.starts_with("HTTP/1.1 404"), "{n}");
        assert!(n.ends_with("not found\n"), "{n}");
    }
}
