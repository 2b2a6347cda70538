//! Blobs and their links into repositories, and the claims that keep gc away from a blob being published (see `service::publish`).

use async_trait::async_trait;

use crate::oci::digest::Digest;
use crate::settings::Quota;

use super::Result;

/// The outcome of [`MetaStore::claim_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The blob was already stored (and the caller verified the bytes):
    /// it is now linked into the repository; nothing to publish.
    Linked(u64),
    /// The caller may publish the bytes, then call `link_blob`.
    Claimed,
    /// gc is deleting this digest's bytes right now; retry shortly.
    Busy,
}

#[async_trait]
pub trait BlobMeta: Send + Sync {
    /// Size of a blob the repository may serve.
    async fn repository_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>>;
    /// Size of a committed blob, in any repository.
    async fn blob(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Repositories that link `digest` (at most `limit`, by name): the
    /// candidates of an automatic mount.
    async fn blob_repositories(&self, digest: &Digest, limit: u32) -> Result<Vec<String>>;
    /// Before publishing an upload's bytes as `digest`: refuses if the
    /// quotas would be exceeded; links at once if the blob is stored and the
    /// caller `verified` the bytes; else records a claim that keeps gc away
    /// until `link_blob`.
    async fn claim_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        verified: bool,
        quotas: &[Quota],
    ) -> Result<Claim>;
    /// Ends a claim whose publication failed.
    async fn release_claim(&self, digest: &Digest) -> Result<()>;
    /// Records a published blob, lets `repo` serve it (creating the
    /// repository) and ends the claim, and the `upload` session the bytes
    /// came from if given. QuotaExceeded leaves the blob unlinked, for gc;
    /// ClaimLost if gc took the claim for a dead one and the bytes may be
    /// gone.
    async fn link_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        quotas: &[Quota],
        upload: Option<&str>,
    ) -> Result<()>;
    /// Lets `repo` serve a blob already linked elsewhere. False if the blob is unknown.
    async fn mount_blob(&self, repo: &str, digest: &Digest, quotas: &[Quota]) -> Result<bool>;
    /// Removes the tombstone of `digest` if it is older than `before_ms`
    /// (its gc died before deleting the bytes). True if there was one.
    async fn break_stale_tombstone(&self, digest: &Digest, before_ms: i64) -> Result<bool>;
    /// Stops `repo` serving the blob. False if it did not.
    async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool>;
}
