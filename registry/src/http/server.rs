//! The API's accept loop: hyper connections with the limits a server on a
//! network needs, which `axum::serve` does not set.
//!
//! - a request head must arrive within `header_timeout` of the connection
//!   starting to wait for it (slowloris), which also closes keep-alive
//!   connections idle for that long;
//! - a client that reads nothing of a response for `send_timeout` is
//!   disconnected (in [`ApiStream`]); a request body that sends nothing for
//!   `body_timeout` ends its request;
//! - a response sent before its request's body was read says
//!   `Connection: close` and the rest of the body is drained (HTTP/1, in
//!   [`Drained`]), so the client reads the answer rather than a reset;
//! - at most `max_connections` connections at once, and at most
//!   `max_connections_per_client` from one address: the next one is told so
//!   (503 or 429, the spec's JSON) and closed.
//!
//! On shutdown it stops accepting, lets every connection finish its
//! requests, and gives up on them after `shutdown_timeout`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::http::drained::Drained;
use crate::http::stream::{ApiStream, ClientAddr, ConnectionId};

/// The id of the next accepted connection.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(0);

/// The connection limits; see the module documentation.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
    /// 0: no limit per address.
    pub max_connections_per_client: usize,
    pub shutdown_timeout: Duration,
}

/// Connections open per client address.
#[derive(Default, Clone)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One client connection counted in [`PerClient`] until dropped.
struct ClientSlot {
    counts: PerClient,
    ip: IpAddr,
}

impl PerClient {
    fn enter(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::default();
    let tracker = TaskTracker::new();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracker.spawn(refuse(stream, Refusal::Busy));
            continue;
        };
        let Some(slot) = per_client.enter(addr.ip(), limits.max_connections_per_client) else {
            tracker.spawn(refuse(stream, Refusal::PerClient));
            continue;
        };
        let connection = Connection {
            builder: builder.clone(),
            app: app.clone(),
            body_timeout: limits.body_timeout,
            send_timeout: limits.send_timeout,
            stop: stop_rx.clone(),
            _permit: permit,
            _slot: slot,
        };
        tracker.spawn(connection.run(stream, addr));
    }

    drop(listener);
    tracker.close();
    let _ = stop_tx.send(true);
    if tokio::time::timeout(limits.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "connections still open at the shutdown timeout; closing them"
        );
    }
}

/// Accepts the next connection, waiting out errors such as running out of
/// file descriptors rather than spinning on them.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                // No Nagle: a response's head and body go out as separate
                // writes; waiting for the client's delayed ACK in between
                // cost pulls of small blobs 40 ms each.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                return (stream, addr);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    app: Router,
    body_timeout: Duration,
    send_timeout: Duration,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    _slot: ClientSlot,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, addr: SocketAddr) {
        let client = ConnectInfo(ClientAddr(addr));
        let id = ConnectionId(NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed));
        let body_timeout = self.body_timeout;
        let app = self.app.clone();
        let service = tower::service_fn(move |req: http::Request<Incoming>| {
            let app = app.clone();
            async move {
                let (parts, body) = req.into_parts();
                // A body that sends nothing for `body_timeout` fails the
                // request; an upload keeps what it had acknowledged. On
                // HTTP/1 an unread body is drained and the connection closed
                // (HTTP/2 resets just the stream).
                let (body, drained) = if parts.version < http::Version::HTTP_2 {
                    let ended = http_body::Body::is_end_stream(&body);
                    let timed = Box::pin(TimeoutBody::new(body_timeout, body));
                    let (body, drained) = Drained::wrap(timed, ended);
                    (Body::new(body), Some(drained))
                } else {
                    (Body::new(TimeoutBody::new(body_timeout, body)), None)
                };
                let mut req = http::Request::from_parts(parts, body);
                req.extensions_mut().insert(client);
                req.extensions_mut().insert(id);
                let mut response = app.oneshot(req).await?;
                if let Some(drained) = drained {
                    drained.close_unless_drained(&mut response);
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let io = TokioIo::new(ApiStream::new(stream, self.send_timeout));
        let conn = self
            .builder
            .serve_connection(io, TowerToHyperService::new(service));
        let mut conn = std::pin::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(client = %addr, error = %e, "connection ended with an error");
                    }
                    return;
                }
                changed = self.stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

enum Refusal {
    /// `max_connections` reached.
    Busy,
    /// `max_connections_per_client` reached for this address.
    PerClient,
}

/// Answers a connection over a limit with one HTTP/1.1 error and closes it.
async fn refuse(mut stream: TcpStream, why: Refusal) {
    let (status, code, message) = match why {
        Refusal::Busy => (
            "503 Service Unavailable",
            "UNAVAILABLE",
            "the registry has too many connections open; retry shortly",
        ),
        Refusal::PerClient => (
            "429 Too Many Requests",
            "TOOMANYREQUESTS",
            "too many connections from this address; close some and retry",
        ),
    };
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]})
        .to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing with unread
        // bytes would reset the connection and could lose the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}
