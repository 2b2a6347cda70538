//! Retention: deleting the tags the rules select, atomically.

use async_trait::async_trait;

use super::gc::sweep_repo;
use super::{End, Mode, PostgresMeta, repository_id};
use crate::meta::{Result, RetentionMeta, SweepRules, TagInfo};

#[async_trait]
impl RetentionMeta for PostgresMeta {
    async fn apply_retention(
        &self,
        repo: &str,
        tags: &[TagInfo],
        untagged_cutoff_ms: Option<i64>,
        dry_run: bool,
    ) -> Result<(Vec<TagInfo>, Vec<String>)> {
        let mode = Mode {
            end: if dry_run { End::Rollback } else { End::Commit },
            ..Mode::WRITE
        };
        let result = transaction!(self, mode, |tx| {
            let Some(repo_id) = repository_id(&mut *tx, repo).await? else {
                return Ok((Vec::new(), Vec::new()));
            };
            let mut deleted = Vec::new();
            for tag in tags {
                let done = sqlx::query(
                    "DELETE FROM tags WHERE repository_id = $1 AND name = $2
                     AND manifest_digest = $3 AND updated_at = $4",
                )
                .bind(repo_id)
                .bind(&tag.name)
                .bind(&tag.digest)
                .bind(tag.updated_at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() > 0 {
                    deleted.push(tag.clone());
                }
            }
            let manifests = match untagged_cutoff_ms {
                Some(cutoff_ms) => {
                    let rules = SweepRules {
                        cutoff_ms,
                        delete_untagged: true,
                        sweep_links: false,
                        claim_cutoff_ms: cutoff_ms,
                    };
                    sweep_repo(tx, repo_id, rules).await?.manifests
                }
                None => Vec::new(),
            };
            Ok((deleted, manifests))
        })?;
        Ok(result)
    }
}
