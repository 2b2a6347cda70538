//! Tags.

use async_trait::async_trait;

use super::Result;

/// A tag, with when it was last pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    pub digest: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

#[async_trait]
pub trait TagMeta: Send + Sync {
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Tags after `last`, sorted, at most `limit`; None if the repository is unknown.
    async fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Option<Vec<String>>>;
    /// Every tag of a repository with its push time (None: no such repository).
    async fn tag_history(&self, repo: &str) -> Result<Option<Vec<TagInfo>>>;
}
