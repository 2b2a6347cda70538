//! Metadata: repositories, manifests, tags, blob links, referrers and upload
//! sessions. [`MetaStore`] is the seam between handlers and the database:
//! SQLite is embedded today, and a PostgreSQL implementation slots in behind
//! the same trait. Every multi-row change is one transaction.

mod change_signal;
mod manifest_cache;
mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteMeta;

use crate::digest::Digest;
use crate::manifest::{Descriptor, SizeMismatch};
use crate::settings::Quota;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata change signal: {0}")]
    ChangeSignal(#[from] std::io::Error),
    #[error("metadata migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob {0} is not in the repository")]
    BlobUnknown(String),
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(String),
    #[error(
        "quota exceeded: repositories matching `{pattern}` may hold {limit} bytes; \
         they hold {usage} and this would add {adding}"
    )]
    QuotaExceeded {
        pattern: String,
        limit: u64,
        usage: u64,
        adding: u64,
    },
    #[error(transparent)]
    SizeMismatch(#[from] SizeMismatch),
    #[error("blob {0} was collected while it was being published; retry the upload")]
    ClaimLost(String),
    #[error("tag `{tag}` is immutable (matches `{pattern}`): it cannot be moved or deleted")]
    TagImmutable { tag: String, pattern: String },
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// A manifest by tag or by digest.
#[derive(Debug, Clone, Copy)]
pub enum Reference<'a> {
    Tag(&'a str),
    Digest(&'a Digest),
}

/// A stored manifest, as served.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    pub digest: String,
    pub media_type: String,
    pub content: bytes::Bytes,
}

/// A manifest to store, with what it refers to (checked to exist, in the
/// same transaction as the write).
#[derive(Debug)]
pub struct NewManifest<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a Digest>,
    /// Annotations as a JSON object, kept for the referrers API.
    pub annotations: Option<String>,
    pub content: &'a [u8],
    pub blobs: &'a [Descriptor],
    pub manifests: &'a [Descriptor],
    /// Tags to point at it.
    pub tags: &'a [String],
    /// Limits the repository's usage must stay under (checked in the write).
    pub quotas: &'a [Quota],
    /// Tag patterns that may be created but never moved to another manifest.
    pub immutable_tags: &'a [String],
}

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

/// A tag, with when it was last pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    pub digest: String,
    /// Unix milliseconds.
    pub updated_at: i64,
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

/// One entry of a referrers response.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

/// An upload session.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub repository: String,
    /// Bytes received so far.
    pub size: u64,
    /// sha256 state after `size` bytes, when known.
    pub hash_state: Option<Vec<u8>>,
    /// Part objects in order.
    pub parts: Vec<String>,
}

/// A chunk appended to an upload.
#[derive(Debug, Clone)]
pub struct NewPart<'a> {
    pub name: &'a str,
    pub size: u64,
    pub hash_state: Option<Vec<u8>>,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;

    /// Repository names after `last`, sorted, at most `limit`.
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<String>>;

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

    async fn manifest(
        &self,
        repo: &str,
        reference: Reference<'_>,
    ) -> Result<Option<ManifestRecord>>;
    /// Stores a manifest and its tags; fails with BlobUnknown/ManifestUnknown
    /// if a reference is missing, SizeMismatch if a descriptor's size is not
    /// the stored content's.
    async fn put_manifest(&self, repo: &str, manifest: NewManifest<'_>) -> Result<()>;
    /// Deletes a manifest and every tag pointing at it. False if unknown;
    /// TagImmutable if one of its tags matches `immutable_tags`.
    async fn delete_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        immutable_tags: &[String],
    ) -> Result<bool>;
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Tags after `last`, sorted, at most `limit`; None if the repository is unknown.
    async fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Option<Vec<String>>>;
    /// Manifests whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>>;

    async fn create_upload(&self, repo: &str, id: &str) -> Result<()>;
    async fn upload(&self, id: &str) -> Result<Option<Upload>>;
    /// Appends a part if the upload still has `offset` bytes (compare and
    /// swap: two writers racing on one upload cannot both win). False if not.
    async fn append_upload_part(&self, id: &str, offset: u64, part: NewPart<'_>) -> Result<bool>;
    async fn delete_upload(&self, id: &str) -> Result<()>;
    /// Sessions not touched since `before_ms` (Unix milliseconds).
    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>>;

    // ---------------------------------------------------------- maintenance

    /// Counts for metrics.
    async fn stats(&self) -> Result<StoreStats>;
    /// Usage of every repository, by name.
    async fn usage(&self) -> Result<Vec<RepoUsage>>;
    /// Every tag of a repository with its push time (None: no such repository).
    async fn tag_history(&self, repo: &str) -> Result<Option<Vec<TagInfo>>>;
    /// One transaction: deletes the tags that still point where they did
    /// when listed (a tag pushed again meanwhile stays); then, with
    /// `untagged_cutoff_ms`, the manifests no tag reaches that are older
    /// than it. A dry run rolls back. Returns the tags and manifests deleted.
    async fn apply_retention(
        &self,
        repo: &str,
        tags: &[TagInfo],
        untagged_cutoff_ms: Option<i64>,
        dry_run: bool,
    ) -> Result<(Vec<TagInfo>, Vec<String>)>;
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

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
