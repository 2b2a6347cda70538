//! Listings: repositories (the catalog), tags, referrers. Paged with `n`
//! and `last`: one more than a page is fetched to know whether another
//! page follows.

use super::{Registry, Repository, Result, ServiceError};
use crate::meta::Referrer;
use crate::oci::digest::Digest;

/// One page of a listing.
pub struct Page<T> {
    pub items: Vec<T>,
    /// Another page follows (after the last item).
    pub more: bool,
}

impl<T> Page<T> {
    fn of(mut items: Vec<T>, n: Option<u32>) -> Self {
        let more = n.is_some_and(|n| items.len() > n as usize);
        if let Some(n) = n {
            items.truncate(n as usize);
        }
        Page { items, more }
    }
}

impl Registry {
    /// Repository names after `last`, at most `n`, of those `visible`
    /// says the caller may see (filtered before paging, so pages stay full).
    pub async fn catalog(
        &self,
        last: Option<&str>,
        n: Option<u32>,
        visible: Option<&(dyn Fn(&str) -> bool + Send + Sync)>,
    ) -> Result<Page<String>> {
        let names = match visible {
            None => {
                self.meta
                    .list_repositories(last, n.map(|n| n.saturating_add(1)))
                    .await?
            }
            Some(visible) => {
                // A query per policy would scale better than this filter.
                let mut names: Vec<String> = self
                    .meta
                    .list_repositories(last, None)
                    .await?
                    .into_iter()
                    .filter(|name| visible(name))
                    .collect();
                if let Some(n) = n {
                    names.truncate(n as usize + 1);
                }
                names
            }
        };
        Ok(Page::of(names, n))
    }
}

impl Repository<'_> {
    /// Tags after `last`, at most `n`.
    pub async fn tags(&self, last: Option<&str>, n: Option<u32>) -> Result<Page<String>> {
        let tags = self
            .meta()
            .list_tags(self.name, last, n.map(|n| n.saturating_add(1)))
            .await?
            .ok_or_else(|| ServiceError::NameUnknown(self.name.to_string()))?;
        Ok(Page::of(tags, n))
    }

    /// Manifests whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        Ok(self
            .meta()
            .referrers(self.name, subject, artifact_type)
            .await?)
    }
}
