//! A mirror's cache size limit: when the repositories of a mirror hold more
//! than its `max_bytes`, the manifests pulled least recently are deleted
//! until what they free brings it under; gc's sweep then removes their
//! blob links and the blobs nothing else uses. (What a manifest frees is
//! estimated from its blobs' sizes: a blob another cached manifest shares
//! stays, and a later gc evicts more if the cache is still over.)

use crate::meta::{MetaError, MetaStore, Reference};
use crate::oci::digest::Digest;
use crate::oci::manifest;

/// Repositories under `prefix` (`docker.io/`) may hold `max_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLimit {
    pub prefix: String,
    pub max_bytes: u64,
}

impl CacheLimit {
    /// The limits of the mirrors that have one.
    pub fn of(mirrors: &[berth_config::MirrorConfig]) -> Vec<CacheLimit> {
        mirrors
            .iter()
            .filter_map(|m| {
                m.max_bytes.map(|max_bytes| CacheLimit {
                    prefix: format!("{}/", m.name),
                    max_bytes,
                })
            })
            .collect()
    }
}

/// Manifests looked at per round.
const BATCH: u32 = 256;

/// Deletes (dry: lists) the least recently pulled manifests of every cache
/// over its limit. Returns (repository, digest) of each.
pub async fn evict(
    meta: &dyn MetaStore,
    limits: &[CacheLimit],
    dry_run: bool,
) -> Result<Vec<(String, String)>, MetaError> {
    let mut evicted = Vec::new();
    if limits.is_empty() {
        return Ok(evicted);
    }
    let usage = meta.usage().await?;
    for limit in limits {
        let used: u64 = usage
            .iter()
            .filter(|u| u.name.starts_with(&limit.prefix))
            .map(|u| u.bytes)
            .sum();
        let mut over = used.saturating_sub(limit.max_bytes);
        if over == 0 {
            continue;
        }
        tracing::info!(
            prefix = limit.prefix,
            used,
            max = limit.max_bytes,
            "a mirror's cache is over its limit: evicting what was pulled least recently"
        );
        for pulled in meta.least_recently_pulled(&limit.prefix, BATCH).await? {
            if over == 0 {
                break;
            }
            let Ok(digest) = pulled.manifest.parse::<Digest>() else {
                continue;
            };
            let frees = match meta
                .manifest(&pulled.repository, Reference::Digest(&digest))
                .await?
            {
                Some(record) => {
                    let blobs: u64 = manifest::parse(&record.content, Some(&record.media_type))
                        .map(|m| m.blobs.iter().map(|b| b.size).sum())
                        .unwrap_or(0);
                    blobs + record.content.len() as u64
                }
                // Deleted meanwhile: only its record is left.
                None => 0,
            };
            if !dry_run {
                meta.delete_manifest(&pulled.repository, &digest, &[])
                    .await?;
                meta.forget_pull(&pulled.repository, &pulled.manifest)
                    .await?;
            }
            tracing::info!(
                repository = pulled.repository,
                digest = pulled.manifest,
                frees,
                dry_run,
                "mirror cache: evicted"
            );
            over = over.saturating_sub(frees);
            evicted.push((pulled.repository, pulled.manifest));
        }
    }
    Ok(evicted)
}
