//! Per-request metrics and the request log line.
//!
//! Every request is labelled with its route template (never the raw path,
//! which holds repository names, digests and tags). Body bytes are counted as
//! they stream, in wrappers around the request and response bodies, so that
//! long uploads and downloads count as they go; the request is counted as
//! finished, timed and logged when its response body has been sent (or
//! dropped, when the client went away).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use prometheus::IntCounter;
use tracing::Instrument;

use super::route;
use crate::metrics;

/// The method as a label value: a client may send any token as method, and
/// labels must stay few.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware. Sits inside the request-id layers, so `x-request-id` is
/// set (taken from the client or generated) by the time it runs.
pub async fn observe(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let route = route::template(&path);
    let method = method_label(req.method());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let received = Arc::new(AtomicU64::new(0));
    let mut done = Done {
        method,
        route,
        path,
        request_id,
        status: None,
        start: Instant::now(),
        received: received.clone(),
        sent: 0,
    };
    metrics::HTTP_IN_FLIGHT.inc();
    // The span gives handlers' own log lines the request's context.
    let span = tracing::info_span!("request", %method, %route, request_id = %done.request_id);
    let req = req.map(|body| {
        Body::new(Counted {
            inner: body,
            bytes: metrics::HTTP_REQUEST_BYTES.with_label_values(&[route]),
            seen: Count::Shared(received),
        })
    });
    // If this future is dropped here (the client went away before the
    // response), `done` is dropped too and still counts and logs the request.
    let response = next.run(req).instrument(span).await;
    done.status = Some(response.status().as_u16());
    response.map(|body| {
        Body::new(Counted {
            inner: body,
            bytes: metrics::HTTP_RESPONSE_BYTES.with_label_values(&[route]),
            seen: Count::Finish(Some(done)),
        })
    })
}

/// What the log line and the per-request metrics need once the request is
/// over. Recorded exactly once, when dropped.
struct Done {
    method: &'static str,
    route: &'static str,
    path: String,
    request_id: String,
    /// None: no response was produced (the client went away first).
    status: Option<u16>,
    start: Instant,
    received: Arc<AtomicU64>,
    sent: u64,
}

impl Drop for Done {
    fn drop(&mut self) {
        let took = self.start.elapsed();
        let status = self.status.map_or("aborted".to_string(), |s| s.to_string());
        metrics::HTTP_REQUESTS
            .with_label_values(&[self.method, self.route, &status])
            .inc();
        metrics::HTTP_DURATION
            .with_label_values(&[self.method, self.route])
            .observe(took.as_secs_f64());
        // Last, so that a request no longer in flight is already counted.
        metrics::HTTP_IN_FLIGHT.dec();
        // A root event: the fields are all here, whatever span is current
        // when the body finishes. Probes (the kubelet's, every few seconds
        // per pod) only at debug.
        macro_rules! request_line {
            ($level:expr) => {
                tracing::event!(
                    parent: None,
                    $level,
                    method = %self.method,
                    route = %self.route,
                    path = %self.path,
                    status = %status,
                    request_bytes = self.received.load(Ordering::Relaxed),
                    response_bytes = self.sent,
                    duration_ms = (took.as_secs_f64() * 1e6).round() / 1e3,
                    request_id = %self.request_id,
                    "request"
                )
            };
        }
        if route::is_probe(self.route) {
            request_line!(tracing::Level::DEBUG);
        } else {
            request_line!(tracing::Level::INFO);
        }
    }
}

/// Where a body's byte count goes besides the Prometheus counter.
enum Count {
    /// The request body: shared with the response's [`Done`].
    Shared(Arc<AtomicU64>),
    /// The response body: finishes the request when the body ends.
    Finish(Option<Done>),
}

/// A body that counts the data bytes passing through it.
struct Counted {
    inner: Body,
    bytes: IntCounter,
    seen: Count,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        // Every field is Unpin (Body is a boxed body).
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            this.bytes.inc_by(n);
            match &mut this.seen {
                Count::Shared(seen) => {
                    seen.fetch_add(n, Ordering::Relaxed);
                }
                Count::Finish(Some(done)) => done.sent += n,
                Count::Finish(None) => {}
            }
        }
        let ended = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended && let Count::Finish(done) = &mut this.seen {
            drop(done.take());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
