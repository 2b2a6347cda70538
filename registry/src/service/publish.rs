//! Publishing a blob while gc may run in another process.
//!
//! The protocol, in metadata transactions (see `MetaStore::claim_blob`):
//! 1. claim the digest (refused while gc holds a tombstone for it: gc has
//!    removed the row and is deleting the bytes; we wait for that to end);
//! 2. write the bytes into place (rename);
//! 3. link the blob into the repository, which ends the claim.
//!
//! gc only removes blobs that have no link and no live claim, in a
//! transaction, and tombstones them before deleting bytes; so whichever of
//! the two comes first, the other sees it, and a link never points at bytes
//! that are about to disappear.

use std::future::Future;
use std::time::Duration;

use crate::meta::{Claim, MetaError, MetaStore, now_ms};
use crate::oci::digest::Digest;
use crate::settings::Quota;
use crate::storage::StorageError;

/// How long a publisher waits for gc to finish deleting the same digest.
const BUSY_WAIT: Duration = Duration::from_secs(10);
/// A tombstone this old belongs to a gc that died: publishers break it, and
/// the next gc finishes its deletions.
pub const STALE_TOMBSTONE: Duration = Duration::from_secs(10 * 60);
/// A publication claim older than this belongs to a publisher that died
/// (publishing takes seconds), whatever gc's grace period.
pub const CLAIM_TTL: Duration = Duration::from_secs(10 * 60);
/// gc stops deleting the bytes of a batch this long after tombstoning it,
/// well before publishers may break its tombstones.
pub const DELETE_DEADLINE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("blob {0} is being garbage-collected right now; retry the upload")]
    Busy(Digest),
}

/// What is published: `size` bytes as `digest` in `repo`. `verified`: the
/// publisher knows the bytes hash to `digest`, so an already-stored blob is
/// linked without writing. `upload`: the session that ends with the link.
pub struct Publication<'a> {
    pub repo: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
    pub verified: bool,
    pub quotas: &'a [Quota],
    pub upload: Option<&'a str>,
}

/// Publishes a blob. `write` puts the bytes in place and returns their size.
pub async fn publish<W, F>(
    meta: &dyn MetaStore,
    p: Publication<'_>,
    write: W,
) -> Result<u64, PublishError>
where
    W: FnOnce() -> F,
    F: Future<Output = Result<u64, StorageError>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match meta
            .claim_blob(p.repo, p.digest, p.size, p.verified, p.quotas)
            .await?
        {
            Claim::Linked(size) => {
                if let Some(id) = p.upload {
                    meta.delete_upload(id).await?;
                }
                return Ok(size);
            }
            Claim::Claimed => break,
            Claim::Busy if started.elapsed() < BUSY_WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Claim::Busy => {
                let stale_before = now_ms() - STALE_TOMBSTONE.as_millis() as i64;
                if !meta.break_stale_tombstone(p.digest, stale_before).await? {
                    return Err(PublishError::Busy(p.digest.clone()));
                }
                tracing::warn!(digest = %p.digest, "broke the tombstone of a gc that died");
            }
        }
    }
    let written = match write().await {
        Ok(n) => n,
        Err(e) => {
            meta.release_claim(p.digest).await?;
            return Err(e.into());
        }
    };
    meta.link_blob(p.repo, p.digest, written, p.quotas, p.upload)
        .await?;
    Ok(written)
}
