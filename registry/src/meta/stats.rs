//! What is stored, for metrics and `berth usage`.

use async_trait::async_trait;

use super::Result;

/// Storage used by one repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepoUsage {
    pub name: String,
    /// Blob bytes (each blob once) plus manifest bytes.
    pub bytes: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub tags: u64,
}

/// Totals of the recorded (non-dry) runs of one kind, for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaintenanceTotals {
    /// "gc" or "retention".
    pub kind: String,
    pub runs: u64,
    pub failed_runs: u64,
    pub deleted_blobs: u64,
    pub deleted_manifests: u64,
    pub deleted_tags: u64,
    pub deleted_bytes: u64,
    /// Start of the last run, Unix seconds (0: never ran).
    pub last_run_unix: f64,
    pub last_duration_seconds: f64,
}

/// What the metadata holds, for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub uploads_in_progress: u64,
    /// One entry per kind ("gc", "retention"), zeros before the first run.
    pub maintenance: Vec<MaintenanceTotals>,
}

#[async_trait]
pub trait StatsMeta: Send + Sync {
    /// Counts for metrics.
    async fn stats(&self) -> Result<StoreStats>;
    /// Usage of every repository, by name.
    async fn usage(&self) -> Result<Vec<RepoUsage>>;
}
