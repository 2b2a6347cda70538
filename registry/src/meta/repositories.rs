//! Repositories: readiness and the catalog.

use async_trait::async_trait;

use super::Result;

#[async_trait]
pub trait RepositoryMeta: Send + Sync {
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;
    /// Closes the connections once the process is done with the store
    /// (SQLite then checkpoints its WAL and removes `-wal` and `-shm`).
    async fn close(&self);
    /// Repository names after `last`, sorted, at most `limit`.
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<String>>;
}
