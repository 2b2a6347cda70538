//! Retention: deleting old tags.

use async_trait::async_trait;

use super::TagInfo;

use super::Result;

#[async_trait]
pub trait RetentionMeta: Send + Sync {
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
}
