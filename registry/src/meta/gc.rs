//! Garbage collection: the sweep of each repository, tombstones for blobs being deleted, and the record of maintenance runs.

use async_trait::async_trait;

use super::Result;

/// How gc decides what is garbage.
#[derive(Debug, Clone, Copy)]
pub struct SweepRules {
    /// Anything created, pushed, uploaded or mounted at or after this
    /// (Unix ms) is young and kept, with everything it references.
    pub cutoff_ms: i64,
    /// Delete manifests that no tag reaches.
    pub delete_untagged: bool,
    /// Delete blob links no manifest references.
    pub sweep_links: bool,
    /// Publication claims made before this (Unix ms) belong to dead
    /// publishers; later ones protect their blob.
    pub claim_cutoff_ms: i64,
}

/// What one repository's sweep removed (or would remove, on a dry run).
#[derive(Debug, Clone, Default)]
pub struct RepoSweep {
    /// Untagged, unreachable manifests deleted.
    pub manifests: Vec<String>,
    /// Blob links no manifest of the repository references.
    pub links: u64,
    /// The repository was left empty and removed.
    pub repository_removed: bool,
}

/// A blob whose metadata gc removed; its bytes are to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoomedBlob {
    pub digest: String,
    pub size: u64,
}

/// Everything a gc would remove, computed in one transaction (dry run).
#[derive(Debug, Clone, Default)]
pub struct GcPlan {
    pub repositories: Vec<(String, RepoSweep)>,
    pub blobs: Vec<DoomedBlob>,
}

/// A finished gc or retention run, as recorded.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceRun {
    pub kind: &'static str,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub dry_run: bool,
    pub ok: bool,
    pub deleted_blobs: u64,
    pub deleted_manifests: u64,
    pub deleted_tags: u64,
    pub deleted_bytes: u64,
    /// JSON: what was deleted, or the error.
    pub detail: Option<String>,
}

/// Leadership of gc: while a process holds it, no other gc runs on the
/// same database. Released when dropped.
pub struct GcLock {
    _held: Option<Box<dyn std::any::Any + Send>>,
}

impl GcLock {
    /// A lock with nothing to release (a store only one host uses).
    pub fn granted() -> Self {
        Self { _held: None }
    }

    /// A lock held for as long as `held` lives (dropping it releases the lock).
    pub fn holding<T: Send + 'static>(held: T) -> Self {
        Self {
            _held: Some(Box::new(held)),
        }
    }
}

impl std::fmt::Debug for GcLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GcLock")
    }
}

#[async_trait]
pub trait GcMeta: Send + Sync {
    /// Becomes the one gc of this database, or None if another process's gc
    /// holds the lock. SQLite: always granted (one host; its writers are
    /// serialised anyway). PostgreSQL: a session advisory lock on a
    /// connection of its own, held until the guard is dropped (or the
    /// process dies: the server releases it with the session).
    async fn gc_lock(&self) -> Result<Option<GcLock>>;
    /// One transaction on one repository: deletes manifests no tag reaches
    /// (through indexes and referrers; young ones and what they reach are
    /// kept), then links no manifest references, then the repository if it
    /// is left empty.
    async fn sweep_repository(&self, repo: &str, rules: SweepRules) -> Result<RepoSweep>;
    /// One transaction: removes up to `limit` blobs created before
    /// `rules.cutoff_ms` that no repository links and no claim made since
    /// `rules.claim_cutoff_ms` protects, leaving tombstones; also the blobs
    /// of older claims (dead publishers).
    async fn tombstone_unlinked_blobs(
        &self,
        rules: SweepRules,
        limit: u32,
    ) -> Result<Vec<DoomedBlob>>;
    /// The bytes are gone: publishers may use these digests again.
    async fn clear_tombstones(&self, digests: &[String]) -> Result<()>;
    /// Tombstones older than `before_ms` (a gc died while deleting).
    async fn stale_tombstones(&self, before_ms: i64) -> Result<Vec<String>>;
    /// Everything a gc would remove, computed in one rolled-back transaction.
    async fn plan_gc(&self, rules: SweepRules) -> Result<GcPlan>;
    async fn record_run(&self, run: &MaintenanceRun) -> Result<()>;
}
