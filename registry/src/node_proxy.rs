//! `berth node-proxy`: a plain TCP forwarder from the node's loopback
//! (`localhost:<port>`) to a registry's Service, run by the operator as a
//! DaemonSet on the host network of every node. containerd (and Docker)
//! talk plain HTTP to a `localhost` registry without any node
//! configuration, so a kubelet pulls `localhost:<port>/team/app:v1` through
//! it. It knows nothing of HTTP: the registry sees the client's `Host`
//! (`localhost:<port>`) and points its token realm there, through this same
//! forwarder.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

/// How long connecting to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds every address that can be bound (a node without IPv6 has no
/// `::1`); Err when none can.
pub async fn bind(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    let mut errors = Vec::new();
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    if listeners.is_empty() {
        anyhow::bail!("cannot listen on any address: {}", errors.join("; "));
    }
    for e in errors {
        tracing::info!(error = %e, "an address is not available; serving on the others");
    }
    Ok(listeners)
}

/// Forwards every connection on `listeners` to `upstream` (`host:port`,
/// resolved at each connection) until `shutdown` completes; then stops
/// accepting and lets open connections finish for up to `drain`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    upstream: String,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let tracker = TaskTracker::new();
    let accepting = futures::future::join_all(listeners.into_iter().map(|listener| {
        let tracker = tracker.clone();
        let upstream = upstream.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok((conn, peer)) => {
                        tracker.spawn(forward(conn, peer, upstream.clone()));
                    }
                    Err(e) => {
                        // EMFILE and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }));
    tokio::select! {
        _ = accepting => {}
        _ = shutdown => {}
    }
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::info!(
            open = tracker.len(),
            "connections still open after the drain period; closing them"
        );
    }
}

async fn forward(mut client: TcpStream, peer: SocketAddr, upstream: String) {
    let _ = client.set_nodelay(true);
    let mut server =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(%upstream, error = %e, "cannot reach the registry");
                return;
            }
            Err(_) => {
                tracing::warn!(%upstream, "cannot reach the registry within {CONNECT_TIMEOUT:?}");
                return;
            }
        };
    let _ = server.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => tracing::debug!(%peer, up, down, "connection closed"),
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn forwards_both_ways_and_drains_on_shutdown() {
        // An upstream that answers "pong:" + what it got, then closes.
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = upstream.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    c.read_exact(&mut buf).await.unwrap();
                    c.write_all(b"pong:").await.unwrap();
                    c.write_all(&buf).await.unwrap();
                });
            }
        });
        // ::1 may be missing here: one address is enough.
        let listeners = bind(&["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()])
            .await
            .unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy = tokio::spawn(serve(
            listeners,
            up_addr.to_string(),
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut answer = Vec::new();
            c.read_to_end(&mut answer).await.unwrap();
            assert_eq!(answer, b"pong:ping");
        }
        // A connection open at shutdown still gets its answer; no new one
        // is accepted after.
        let mut open = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        open.write_all(b"late").await.unwrap();
        let mut answer = Vec::new();
        open.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong:late");
        tokio::time::timeout(Duration::from_secs(5), proxy)
            .await
            .expect("the proxy stops once its connections are done")
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_client() {
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let listeners = bind(&["127.0.0.1:0".parse().unwrap()]).await.unwrap();
        let addr = listeners[0].local_addr().unwrap();
        tokio::spawn(serve(
            listeners,
            dead_addr.to_string(),
            std::future::pending(),
            Duration::from_secs(1),
        ));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        // Closed (EOF or reset), never hangs.
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the client is closed");
        assert!(answer.is_empty());
    }

    #[tokio::test]
    async fn nothing_to_bind_is_an_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = bind(&[taken.local_addr().unwrap()]).await.unwrap_err();
        assert!(err.to_string().contains("cannot listen"), "{err}");
    }
}
