//! Failed logins, counted where every process on the database sees them:
//! the rate limit holds across replicas (an attacker does not get N times
//! the attempts by spreading them over N replicas).

use async_trait::async_trait;

use super::Result;

/// A key's failures in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: u32,
    /// When the window began (Unix ms).
    pub window_start_ms: i64,
}

#[async_trait]
pub trait LoginMeta: Send + Sync {
    /// The failures recorded for `key`, if any.
    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>>;

    /// One more failure of `key` at `now_ms`; a window older than
    /// `window_ms` starts again at one. Forgets windows that have ended.
    async fn record_login_failure(&self, key: &str, now_ms: i64, window_ms: i64) -> Result<()>;

    /// Forgets `key`'s failures (a correct login).
    async fn clear_login_failures(&self, key: &str) -> Result<()>;
}
