//! Rate limit on failed logins, per (client address, user name): after
//! `max` failures within `window`, further attempts at that user from that
//! address are refused until the window has passed. Keying on the user too
//! means a shared address (a NAT, an ingress) does not lock everyone out
//! when one account is attacked; a success clears the user's count.
//!
//! The counts live in the metadata store, so every replica on one database
//! shares them: spreading attempts over N replicas gets no more than one
//! gets. If the store does not answer, attempts are let through (logged):
//! the requests they are for need the store anyway.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::meta::{MetaStore, now_ms};

pub struct FailureLimiter {
    max: u32,
    window: Duration,
    store: Arc<dyn MetaStore>,
}

fn key(client: IpAddr, user: &str) -> String {
    format!("{client}\n{user}")
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration, store: Arc<dyn MetaStore>) -> Self {
        Self { max, window, store }
    }

    fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// Ok(had_failures) if `user` may try to log in from `client` now;
    /// else how long until it may.
    pub async fn check(&self, client: IpAddr, user: &str) -> Result<bool, Duration> {
        match self.store.login_failures(&key(client, user)).await {
            Ok(None) => Ok(false),
            Ok(Some(f)) => {
                let ends = f.window_start_ms + self.window_ms();
                let now = now_ms();
                if f.failures >= self.max && ends > now {
                    Err(Duration::from_millis((ends - now) as u64))
                } else {
                    Ok(true)
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = crate::report::chain(&e),
                    "failed logins could not be read; not limiting"
                );
                Ok(false)
            }
        }
    }

    pub async fn record_failure(&self, client: IpAddr, user: &str) {
        let recorded = self
            .store
            .record_login_failure(&key(client, user), now_ms(), self.window_ms())
            .await;
        if let Err(e) = recorded {
            tracing::warn!(
                error = crate::report::chain(&e),
                "a failed login could not be recorded"
            );
        }
    }

    /// A correct login: its earlier failures no longer count.
    pub async fn record_success(&self, client: IpAddr, user: &str) {
        if let Err(e) = self.store.clear_login_failures(&key(client, user)).await {
            tracing::warn!(
                error = crate::report::chain(&e),
                "failed logins could not be cleared"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::SqliteMeta;

    #[tokio::test]
    async fn blocks_one_user_from_one_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteMeta::open(&dir.path().join("m.db")).await.unwrap());
        let l = FailureLimiter::new(3, Duration::from_secs(60), store);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a, "alice").await.is_ok());
            l.record_failure(a, "alice").await;
        }
        let wait = l.check(a, "alice").await.unwrap_err();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        // Another user behind the same address, and the same user elsewhere.
        assert_eq!(l.check(a, "bob").await, Ok(false));
        assert_eq!(l.check(b, "alice").await, Ok(false));
        // Success clears the count.
        l.record_failure(b, "alice").await;
        assert_eq!(l.check(b, "alice").await, Ok(true));
        l.record_success(b, "alice").await;
        for _ in 0..2 {
            l.record_failure(b, "alice").await;
        }
        assert!(l.check(b, "alice").await.is_ok());
    }

    #[tokio::test]
    async fn a_window_that_ended_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteMeta::open(&dir.path().join("m.db")).await.unwrap());
        let l = FailureLimiter::new(2, Duration::from_millis(200), store);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.record_failure(a, "carol").await;
        l.record_failure(a, "carol").await;
        assert!(l.check(a, "carol").await.is_err());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(l.check(a, "carol").await.is_ok());
        l.record_failure(a, "carol").await;
        assert!(
            l.check(a, "carol").await.is_ok(),
            "the old window's failures counted"
        );
    }
}
