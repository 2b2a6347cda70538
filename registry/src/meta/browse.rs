//! Browsing: what the web UI and its JSON API show — repositories with
//! their tag counts, sizes and last push, a repository's tags with the
//! manifests they point at, the tags of one manifest, quota usage and the
//! recent maintenance runs. Read-only; every query is bounded by the page
//! the caller asked for.

use async_trait::async_trait;

use super::{MaintenanceRun, Result};
use crate::oci::digest::Digest;

/// One repository, as the repository list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    pub name: String,
    pub tags: u64,
    pub manifests: u64,
    /// Blob bytes (each blob once) plus manifest bytes: what a quota counts.
    pub bytes: u64,
    /// The latest tag update or manifest push, Unix ms (None: nothing pushed).
    pub last_push_ms: Option<i64>,
}

/// A tag with the manifest it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub name: String,
    pub digest: String,
    pub media_type: String,
    /// The manifest's bytes (its size, and what the service describes).
    pub content: bytes::Bytes,
    /// When the tag was last pointed at this manifest, Unix ms.
    pub updated_at: i64,
}

/// One page of a repository's tags, newest push first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    /// Tags in the repository (all pages).
    pub total: u64,
    pub rows: Vec<TagRow>,
}

/// What is known of one manifest besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFacts {
    /// When it was pushed, Unix ms.
    pub created_at: i64,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
}

#[async_trait]
pub trait BrowseMeta: Send + Sync {
    /// Summaries of the repositories named (unknown names are left out),
    /// in the order of `names`.
    async fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>>;
    /// Tags of `repo`, newest push first (then by name), `offset` into that
    /// order, at most `limit`; None if the repository is unknown.
    async fn tag_page(&self, repo: &str, offset: u64, limit: u32) -> Result<Option<TagPage>>;
    /// Push time and tags of a manifest of `repo`; None if it is not there.
    async fn manifest_facts(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestFacts>>;
    /// Bytes held by the repositories matching `pattern` together (each
    /// blob once per repository, plus manifests): a quota's usage.
    async fn pattern_usage(&self, pattern: &str) -> Result<u64>;
    /// The latest recorded maintenance runs (dry runs included), newest first.
    async fn recent_runs(&self, limit: u32) -> Result<Vec<MaintenanceRun>>;
}

/// The `kind` of a recorded run, as the static label `MaintenanceRun` holds.
pub(crate) fn run_kind(kind: &str) -> &'static str {
    match kind {
        "gc" => "gc",
        "retention" => "retention",
        _ => "other",
    }
}
