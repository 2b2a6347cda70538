//! Metadata: repositories, manifests, tags, blob links, referrers and upload
//! sessions. [`MetaStore`] is the seam between handlers and the database:
//! SQLite is embedded today, and a PostgreSQL implementation slots in behind
//! the same trait. Every multi-row change is one transaction.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteMeta;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob {0} is not in the repository")]
    BlobUnknown(String),
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(String),
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
    pub content: Vec<u8>,
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
    pub blobs: &'a [Digest],
    pub manifests: &'a [Digest],
    /// Tags to point at it.
    pub tags: &'a [String],
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
    /// Records a committed blob and lets `repo` serve it (creating the repository).
    async fn link_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<()>;
    /// Lets `repo` serve a blob already linked elsewhere. False if the blob is unknown.
    async fn mount_blob(&self, repo: &str, digest: &Digest) -> Result<bool>;
    /// Stops `repo` serving the blob. False if it did not.
    async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool>;

    async fn manifest(
        &self,
        repo: &str,
        reference: Reference<'_>,
    ) -> Result<Option<ManifestRecord>>;
    /// Stores a manifest and its tags; fails with BlobUnknown/ManifestUnknown
    /// if a reference is missing.
    async fn put_manifest(&self, repo: &str, manifest: NewManifest<'_>) -> Result<()>;
    /// Deletes a manifest and every tag pointing at it. False if unknown.
    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool>;
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
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
