//! Keeping a registry's disk in check: garbage collection ([`gc`]),
//! retention rules ([`retention`]), mirror caches held to their size
//! ([`evict`], run by gc) and storage usage against quotas ([`usage`]). Quotas and immutable tags are enforced at push time by the
//! metadata store; see `crate::settings` for where their rules come from.

pub mod evict;
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

/// What the repositories `pattern` matches (a name, or a pattern of the
/// policy file) hold, summed: the operator's view of a Repository.
pub async fn pattern_usage(
    meta: &dyn MetaStore,
    pattern: &str,
) -> Result<berth_config::ops::Usage, MetaError> {
    let mut usage = berth_config::ops::Usage::default();
    for r in meta.usage().await? {
        if pattern::matches(pattern, &r.name) {
            usage.repositories += 1;
            usage.tags += r.tags;
            usage.manifests += r.manifests;
            usage.bytes += r.bytes;
        }
    }
    Ok(usage)
}

/// Bytes a crash left behind that no live upload or publication owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Staging files of small blobs never renamed into place.
    pub staging_files: u64,
    pub staging_bytes: u64,
    /// Upload directories with no session (a killed single-POST upload, or
    /// a session removed while its data was being deleted).
    pub uploads: u64,
}

/// Finds (and unless `dry_run`, removes) the leftovers not written to since
/// `cutoff`. An upload whose session still exists is left to expire.
pub async fn sweep_leftovers(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    cutoff: std::time::SystemTime,
    dry_run: bool,
) -> Result<Leftovers, gc::GcError> {
    let mut found = Leftovers::default();
    for (name, size) in blobs.stale_staging(cutoff).await? {
        if !dry_run {
            blobs.delete_staging(&name).await?;
        }
        tracing::info!(file = %name, size, dry_run, "staging file left by a crash");
        found.staging_files += 1;
        found.staging_bytes += size;
    }
    for id in blobs.idle_uploads(cutoff).await? {
        if meta.upload(&id).await?.is_some() {
            continue;
        }
        if !dry_run {
            blobs.delete_upload(&id).await?;
        }
        tracing::info!(upload = %id, dry_run, "upload data left without a session");
        found.uploads += 1;
    }
    Ok(found)
}

/// Runs gc every `every` inside the server (`gc_interval_seconds`).
pub async fn gc_every(
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    every: Duration,
    opts: gc::GcOptions,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = gc::run(meta.as_ref(), blobs.as_ref(), &opts).await {
            tracing::error!(error = crate::report::chain(&e), "scheduled gc failed");
        }
    }
}
