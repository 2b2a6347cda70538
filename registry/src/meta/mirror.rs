//! What the pull-through cache (`crate::mirror`) keeps in the metadata
//! store, so that every process on one database shares it: when a cached
//! tag was last checked upstream, who is fetching what from an upstream
//! (one fetch across processes), and when cached manifests were last pulled.

use async_trait::async_trait;

use super::Result;

/// A cached manifest and when it was last pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub repository: String,
    pub manifest: String,
    pub pulled_at: i64,
}

#[async_trait]
pub trait MirrorMeta: Send + Sync {
    /// When `repo:tag` was last checked against its upstream (Unix ms).
    async fn tag_checked_at(&self, repo: &str, tag: &str) -> Result<Option<i64>>;

    /// `repo:tag` was checked against its upstream at `at`.
    async fn set_tag_checked(&self, repo: &str, tag: &str, at: i64) -> Result<()>;

    /// Claims the fetch of `key` for `owner` at `now`: true if no one holds
    /// it, or the holder's claim dates from before `stale_before` (it died).
    async fn claim_fetch(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<bool>;

    /// Ends `owner`'s claim on `key` (if it still holds it).
    async fn release_fetch(&self, key: &str, owner: &str) -> Result<()>;

    /// Manifest `digest` of `repo` was pulled at `at`.
    async fn record_pull(&self, repo: &str, digest: &str, at: i64) -> Result<()>;

    /// Cached manifests under `prefix` (`docker.io/`), least recently
    /// pulled first.
    async fn least_recently_pulled(&self, prefix: &str, limit: u32) -> Result<Vec<Pulled>>;

    /// Forgets the pulls of a manifest evicted or deleted.
    async fn forget_pull(&self, repo: &str, digest: &str) -> Result<()>;
}
