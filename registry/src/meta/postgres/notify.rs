//! Hearing other processes' changes: a task that LISTENs on
//! [`CHANGES`](super::CHANGES) on a connection of its own and moves the
//! change signal (`change_signal::Listened`) on every notification.
//!
//! While it is not listening (not yet connected, the connection dropped,
//! the database restarting) the signal reads `UNREADABLE`, so the manifest
//! cache is off and every lookup goes to the database; the task reconnects
//! by itself (backing off up to a few seconds) and, once it listens again,
//! gives the signal a new value, so nothing cached before is trusted.
//! A connection that dies silently (no reset reaches us) is found by a
//! `SELECT 1` after `IDLE` without notifications; until then entries still
//! expire after `manifest_cache::MAX_AGE`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::CHANGES;
use crate::meta::change_signal::Listened;

/// Without a notification for this long, the connection is checked.
const IDLE: Duration = Duration::from_secs(5);
/// The longest pause between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The listening task; stopped when dropped.
pub(super) struct Listener {
    task: JoinHandle<()>,
    pool: PgPool,
}

impl Listener {
    /// Starts listening; the receiver completes when it first listens.
    pub(super) fn spawn(
        options: PgConnectOptions,
        timeout: Duration,
        signal: Arc<Listened>,
    ) -> (Self, oneshot::Receiver<()>) {
        // A pool of one, only to (re)connect: PgListener's way.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let (first, listening) = oneshot::channel();
        let task = tokio::spawn(listen(pool.clone(), timeout, signal, first));
        (Self { task, pool }, listening)
    }

    /// Stops listening and closes the connection.
    pub(super) async fn stop(&self) {
        self.task.abort();
        self.pool.close().await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(
    pool: PgPool,
    timeout: Duration,
    signal: Arc<Listened>,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut failures: u32 = 0;
    loop {
        signal.deaf();
        let mut listener = match subscribe(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(
                        error = %e,
                        "cannot listen for metadata changes; the manifest cache is off until it can"
                    );
                }
                failures += 1;
                let pause = Duration::from_millis(100 << failures.min(5)).min(MAX_BACKOFF);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if failures > 0 {
            tracing::info!("listening for metadata changes again; the manifest cache is back on");
        }
        failures = 0;
        // Whatever was announced while deaf is covered by the new value.
        signal.listening();
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        let lost = loop {
            match tokio::time::timeout(IDLE, listener.try_recv()).await {
                Ok(Ok(Some(_))) => signal.heard(),
                Ok(Ok(None)) => break "the connection was closed".to_string(),
                Ok(Err(e)) => break e.to_string(),
                // Quiet: make sure the connection is alive. (try_recv is
                // cancel-safe: a message is consumed only when whole.)
                Err(_) => {
                    let ping = sqlx::query("SELECT 1").execute(&mut listener);
                    match tokio::time::timeout(timeout, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break format!("no answer within {timeout:?}"),
                    }
                }
            }
        };
        signal.deaf();
        tracing::warn!(
            error = %lost,
            "stopped hearing metadata changes; the manifest cache is off until listening again"
        );
        drop(listener);
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is ours: a lost connection must make the signal deaf
    // before anything is heard again.
    listener.eager_reconnect(false);
    listener.listen(CHANGES).await?;
    Ok(listener)
}
