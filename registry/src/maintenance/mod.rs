//! Keeping a registry's disk in check: garbage collection ([`gc`]),
//! retention rules ([`retention`]) and storage usage against quotas
//! ([`usage`]). Quotas and immutable tags are enforced at push time by the
//! metadata store; see `crate::settings` for where their rules come from.

pub mod gc;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::meta::{MetaError, MetaStore, RepoUsage};
use crate::pattern;
use crate::settings::RepositorySettings;
use crate::storage::BlobStore;

/// A quota of the policy file and what the repositories it covers hold.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaUsage {
    pub pattern: String,
    pub limit_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Blobs in storage, each once, and their bytes.
    pub stored_blobs: u64,
    pub stored_bytes: u64,
    pub repositories: Vec<RepoUsage>,
    pub quotas: Vec<QuotaUsage>,
}

/// Usage of every repository and of every quota in `settings`.
pub async fn usage(
    meta: &dyn MetaStore,
    settings: &[RepositorySettings],
) -> Result<Usage, MetaError> {
    let repos = meta.usage().await?;
    let stats = meta.stats().await?;
    let quotas = settings
        .iter()
        .filter_map(|s| {
            let limit_bytes = s.quota_bytes?;
            let used_bytes = repos
                .iter()
                .filter(|r| pattern::matches(&s.name, &r.name))
                .map(|r| r.bytes)
                .sum();
            Some(QuotaUsage {
                pattern: s.name.clone(),
                limit_bytes,
                used_bytes,
            })
        })
        .collect();
    Ok(Usage {
        stored_blobs: stats.blobs,
        stored_bytes: stats.blob_bytes,
        repositories: repos,
        quotas,
    })
}

/// Runs gc every `every` inside the server (`gc_interval_seconds`).
pub async fn gc_every(
    meta: Arc<dyn MetaStore>,
    blobs: BlobStore,
    every: Duration,
    opts: gc::GcOptions,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = gc::run(meta.as_ref(), &blobs, &opts).await {
            tracing::error!(error = %e, "scheduled gc failed");
        }
    }
}
