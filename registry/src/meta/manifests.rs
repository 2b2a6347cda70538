//! Manifests, what they reference, and their referrers.

use async_trait::async_trait;

use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::settings::Quota;

use super::Result;

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
    /// Whether every blob and child manifest must be in the repository
    /// already (a push). False for a manifest mirrored from an upstream:
    /// its blobs and children are fetched when first pulled.
    pub check_children: bool,
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

#[async_trait]
pub trait ManifestMeta: Send + Sync {
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
    /// Manifests whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>>;
}
