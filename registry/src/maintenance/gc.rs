//! Garbage collection, safe while the registry serves pushes.
//!
//! Mark and sweep are queries on the metadata, one transaction per
//! repository: manifests no tag reaches (through indexes and referrers) are
//! deleted, then blob links no remaining manifest references, then empty
//! repositories. Anything younger than the grace period — manifests pushed,
//! blobs uploaded or mounted — is kept with all it references. Blobs left
//! without any link are then removed in batches: their rows are replaced by
//! tombstones in one transaction, the bytes deleted, the tombstones cleared.
//! A push of the same digest meanwhile waits for the tombstone to clear
//! (see `crate::service::publish`), so no link ever points at deleted bytes.
//!
//! One gc at a time per database: a run first takes the gc lock
//! (`GcMeta::gc_lock`; an advisory lock on PostgreSQL) and, when another
//! process's gc holds it, does nothing and says it was skipped.

use std::time::{Duration, Instant};

use crate::meta::{DoomedBlob, MaintenanceRun, MetaError, MetaStore, SweepRules, now_ms};
use crate::oci::digest::Digest;
use crate::service::publish::{CLAIM_TTL, DELETE_DEADLINE, STALE_TOMBSTONE};
use crate::storage::{BlobStore, StorageError};

/// Blobs tombstoned (and then deleted) per transaction.
const BATCH: u32 = 256;
/// Blobs deleted by one call to the store.
const DELETE_GROUP: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Anything younger is kept.
    pub grace: Duration,
    /// Delete manifests no tag reaches (default on).
    pub delete_untagged: bool,
    /// Report what would go; change nothing.
    pub dry_run: bool,
    /// Mirror caches held to a size: their least recently pulled manifests
    /// go first.
    pub cache_limits: Vec<super::evict::CacheLimit>,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            delete_untagged: true,
            dry_run: false,
            cache_limits: Vec::new(),
        }
    }
}

/// What a run removed (or, dry, would remove).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub dry_run: bool,
    /// Another gc was running on the same database: this run did nothing.
    pub skipped: bool,
    pub repositories_checked: u64,
    /// (repository, digest) of each untagged manifest deleted.
    pub manifests: Vec<(String, String)>,
    /// (repository, digest) of each manifest evicted from a mirror's cache.
    pub evicted: Vec<(String, String)>,
    pub links: u64,
    pub repositories_removed: Vec<String>,
    pub blobs: u64,
    pub bytes: u64,
    /// Staging files and session-less upload data older than the grace period.
    pub leftovers: super::Leftovers,
    /// Dry runs: what would go without the grace period, and does not.
    pub kept: Kept,
    pub duration: Duration,
}

/// What the grace period keeps (younger than it, and otherwise garbage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    pub manifests: u64,
    pub blobs: u64,
    pub bytes: u64,
}

impl GcReport {
    fn run_record(&self, started_ms: i64, ok: bool, detail: Option<String>) -> MaintenanceRun {
        MaintenanceRun {
            kind: "gc",
            started_ms,
            finished_ms: now_ms(),
            dry_run: self.dry_run,
            ok,
            deleted_blobs: self.blobs,
            deleted_manifests: self.manifests.len() as u64,
            deleted_tags: 0,
            deleted_bytes: self.bytes + self.leftovers.staging_bytes,
            detail,
        }
    }
}

/// Runs one gc and records it (also when it fails), unless another gc
/// holds the lock: then the report says `skipped` and nothing is recorded.
pub async fn run(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    opts: &GcOptions,
) -> Result<GcReport, GcError> {
    let started = Instant::now();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // Held until the run ends (dropped on every return below).
    let Some(_leader) = meta.gc_lock().await? else {
        tracing::info!(dry_run = opts.dry_run, "another gc is running; skipped");
        report.skipped = true;
        report.duration = started.elapsed();
        return Ok(report);
    };
    // The run starts once it holds the lock: the recorded runs of all
    // processes never overlap.
    let started_ms = now_ms();
    let result = collect(meta, blobs, opts, started_ms, &mut report).await;
    report.duration = started.elapsed();
    let detail = result
        .as_ref()
        .err()
        .map(|e| serde_json::json!({"error": e.to_string()}).to_string());
    // A dry run writes nothing, not even its record.
    if !opts.dry_run {
        let record = report.run_record(started_ms, result.is_ok(), detail);
        if let Err(e) = meta.record_run(&record).await {
            tracing::warn!(error = format!("{e:#}"), "could not record the gc run");
        }
    }
    result?;
    tracing::info!(
        dry_run = report.dry_run,
        repositories = report.repositories_checked,
        manifests = report.manifests.len(),
        links = report.links,
        repositories_removed = report.repositories_removed.len(),
        blobs = report.blobs,
        bytes = report.bytes,
        staging_files = report.leftovers.staging_files,
        abandoned_uploads = report.leftovers.uploads,
        duration_ms = report.duration.as_millis() as u64,
        "gc finished"
    );
    Ok(report)
}

async fn collect(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    opts: &GcOptions,
    started_ms: i64,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let cutoff_ms = started_ms - opts.grace.as_millis() as i64;
    let rules = SweepRules {
        cutoff_ms,
        delete_untagged: opts.delete_untagged,
        sweep_links: true,
        claim_cutoff_ms: cutoff_ms.min(started_ms - CLAIM_TTL.as_millis() as i64),
    };
    report.evicted = super::evict::evict(meta, &opts.cache_limits, opts.dry_run).await?;
    let leftover_cutoff = std::time::SystemTime::now() - opts.grace;
    report.leftovers = super::sweep_leftovers(meta, blobs, leftover_cutoff, opts.dry_run).await?;
    if opts.dry_run {
        let plan = meta.plan_gc(rules).await?;
        report.repositories_checked = plan.repositories.len() as u64;
        for (repo, sweep) in plan.repositories {
            tally(report, &repo, sweep);
        }
        for blob in &plan.blobs {
            tracing::info!(digest = %blob.digest, size = blob.size, "gc would delete blob");
        }
        report.blobs = plan.blobs.len() as u64;
        report.bytes = plan.blobs.iter().map(|b| b.size).sum();
        // The same plan as if the grace period were over now.
        let now = SweepRules {
            cutoff_ms: started_ms,
            claim_cutoff_ms: rules.claim_cutoff_ms,
            ..rules
        };
        let without_grace = meta.plan_gc(now).await?;
        let manifests: usize = without_grace
            .repositories
            .iter()
            .map(|(_, s)| s.manifests.len())
            .sum();
        report.kept = Kept {
            manifests: (manifests as u64).saturating_sub(report.manifests.len() as u64),
            blobs: (without_grace.blobs.len() as u64).saturating_sub(report.blobs),
            bytes: without_grace
                .blobs
                .iter()
                .map(|b| b.size)
                .sum::<u64>()
                .saturating_sub(report.bytes),
        };
        return Ok(());
    }

    // Finish the work of a gc that died between tombstoning and deleting.
    let stale = meta
        .stale_tombstones(started_ms - STALE_TOMBSTONE.as_millis() as i64)
        .await?;
    if !stale.is_empty() {
        for digest in &stale {
            delete_bytes(blobs, digest).await?;
        }
        meta.clear_tombstones(&stale).await?;
        tracing::info!(count = stale.len(), "finished deletions of an earlier gc");
    }

    for repo in meta.list_repositories(None, None).await? {
        let sweep = meta.sweep_repository(&repo, rules).await?;
        report.repositories_checked += 1;
        tally(report, &repo, sweep);
    }

    loop {
        let batch = meta.tombstone_unlinked_blobs(rules, BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let tombstoned = Instant::now();
        let mut deleted = Vec::with_capacity(batch.len());
        // Deleted a group at a time: one request per group on S3.
        for group in batch.chunks(DELETE_GROUP) {
            if tombstoned.elapsed() > DELETE_DEADLINE {
                // Leave the rest tombstoned: the next gc deletes them.
                tracing::warn!("gc is deleting too slowly; leaving the rest for the next run");
                meta.clear_tombstones(&deleted).await?;
                return Ok(());
            }
            let mut digests = Vec::with_capacity(group.len());
            for DoomedBlob { digest, size } in group {
                let size = match size {
                    // A dead publisher's bytes: their size is not recorded.
                    0 => blob_size(blobs, digest).await?,
                    n => *n,
                };
                match digest.parse::<Digest>() {
                    Ok(d) => digests.push(d),
                    // Only digests we validated are ever stored.
                    Err(_) => tracing::warn!(digest, "gc skipped a malformed digest"),
                }
                tracing::debug!(%digest, size, "gc deletes blob");
                report.blobs += 1;
                report.bytes += size;
            }
            blobs.delete_blobs(&digests).await?;
            deleted.extend(group.iter().map(|b| b.digest.clone()));
        }
        meta.clear_tombstones(&deleted).await?;
        if batch.len() < BATCH as usize {
            return Ok(());
        }
    }
}

fn tally(report: &mut GcReport, repo: &str, sweep: crate::meta::RepoSweep) {
    for digest in sweep.manifests {
        tracing::info!(repository = repo, %digest, dry_run = report.dry_run, "gc: untagged manifest");
        report.manifests.push((repo.to_string(), digest));
    }
    report.links += sweep.links;
    if sweep.repository_removed {
        tracing::info!(
            repository = repo,
            dry_run = report.dry_run,
            "gc: empty repository"
        );
        report.repositories_removed.push(repo.to_string());
    }
}

async fn blob_size(blobs: &dyn BlobStore, digest: &str) -> Result<u64, GcError> {
    match digest.parse::<Digest>() {
        Ok(d) => Ok(blobs.size(&d).await?.unwrap_or(0)),
        Err(_) => Ok(0),
    }
}

async fn delete_bytes(blobs: &dyn BlobStore, digest: &str) -> Result<(), GcError> {
    match digest.parse::<Digest>() {
        Ok(d) => Ok(blobs.delete_blob(&d).await?),
        // Only digests we validated are ever stored; nothing to delete otherwise.
        Err(_) => {
            tracing::warn!(digest, "gc skipped a malformed digest");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::meta::{BlobMeta, Claim, GcMeta, SqliteMeta, StatsMeta};
    use crate::oci::digest::Algorithm;

    /// Rules whose cutoffs are now, between two short sleeps.
    async fn tick() -> SweepRules {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t = now_ms();
        tokio::time::sleep(Duration::from_millis(5)).await;
        SweepRules {
            cutoff_ms: t,
            delete_untagged: true,
            sweep_links: true,
            claim_cutoff_ms: t,
        }
    }

    /// The publish protocol against gc's blob sweep, step by step.
    #[tokio::test]
    async fn publishers_and_gc_exclude_each_other() {
        let meta = SqliteMeta::memory().await.unwrap();
        let blobs = crate::storage::ObjectBlobs::memory();
        let d = Digest::of(Algorithm::Sha256, b"bytes");
        let claim = meta.claim_blob("r", &d, 5, true, &[]).await.unwrap();
        assert_eq!(claim, Claim::Claimed);
        blobs
            .put_verified(&d, Bytes::from_static(b"bytes"))
            .await
            .unwrap();
        meta.link_blob("r", &d, 5, &[], None).await.unwrap();
        assert!(meta.unlink_blob("r", &d).await.unwrap());

        // An upload claims the digest after the cutoff: gc leaves it alone.
        let cutoff = tick().await;
        let claim = meta.claim_blob("r", &d, 5, false, &[]).await.unwrap();
        assert_eq!(claim, Claim::Claimed);
        assert!(
            meta.tombstone_unlinked_blobs(cutoff, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Linking ends the claim; linked blobs are not garbage either.
        meta.link_blob("r", &d, 5, &[], None).await.unwrap();
        let cutoff = tick().await;
        assert!(
            meta.tombstone_unlinked_blobs(cutoff, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // A verified re-upload of a stored blob links without writing.
        assert_eq!(
            meta.claim_blob("s", &d, 5, true, &[]).await.unwrap(),
            Claim::Linked(5)
        );

        // Unlinked everywhere and old: gc tombstones it; publishers wait.
        assert!(meta.unlink_blob("r", &d).await.unwrap());
        assert!(meta.unlink_blob("s", &d).await.unwrap());
        let cutoff = tick().await;
        let doomed = meta.tombstone_unlinked_blobs(cutoff, 10).await.unwrap();
        assert_eq!(doomed.len(), 1);
        assert_eq!(doomed[0].size, 5);
        assert_eq!(
            meta.claim_blob("r", &d, 5, true, &[]).await.unwrap(),
            Claim::Busy
        );
        assert!(!meta.mount_blob("r", &d, &[]).await.unwrap());
        // A fresh tombstone is not stale; once cleared, publishing resumes.
        assert!(
            !meta
                .break_stale_tombstone(&d, cutoff.cutoff_ms)
                .await
                .unwrap()
        );
        meta.clear_tombstones(&[d.to_string()]).await.unwrap();
        assert_eq!(
            meta.claim_blob("r", &d, 5, true, &[]).await.unwrap(),
            Claim::Claimed
        );
    }

    /// A claim whose publisher died (older than the claim cutoff, no blob
    /// row) is collected; the publisher, if it was only slow, is told.
    #[tokio::test]
    async fn dead_claims_are_collected() {
        let meta = SqliteMeta::memory().await.unwrap();
        let blobs = crate::storage::ObjectBlobs::memory();
        let d = Digest::of(Algorithm::Sha256, b"half published");
        assert_eq!(
            meta.claim_blob("r", &d, 14, false, &[]).await.unwrap(),
            Claim::Claimed
        );
        blobs
            .put_verified(&d, Bytes::from_static(b"half published"))
            .await
            .unwrap();
        // Younger than CLAIM_TTL: even a zero grace period keeps it.
        let opts = GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        };
        let report = run(&meta, &blobs, &opts).await.unwrap();
        assert_eq!(report.blobs, 0);
        // Declared dead: tombstoned, and a late link is refused.
        let doomed = meta
            .tombstone_unlinked_blobs(tick().await, 10)
            .await
            .unwrap();
        assert_eq!(doomed.len(), 1);
        assert!(matches!(
            meta.link_blob("r", &d, 14, &[], None).await,
            Err(MetaError::ClaimLost(_))
        ));
        assert_eq!(meta.stats().await.unwrap().maintenance[0].runs, 1);
    }
}
