//! Tags.

use async_trait::async_trait;
use sqlx::Row;

use super::{Durability, SqliteMeta, repository_id};
use crate::meta::{Result, TagInfo, TagMeta};

#[async_trait]
impl TagMeta for SqliteMeta {
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM tags WHERE name = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(tag);
        let done = self.write_one(Durability::Full, query).await?;
        self.manifests.changed();
        Ok(done.rows_affected() > 0)
    }
    async fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Option<Vec<String>>> {
        // One statement a page: no row if the repository does not exist,
        // one row without a name if it has no tags past `last`.
        let rows: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT t.name FROM repositories r
             LEFT JOIN tags t ON t.repository_id = r.id AND t.name > $2
             WHERE r.name = $1 ORDER BY t.name LIMIT $3",
        )
        .bind(repo)
        .bind(last.unwrap_or(""))
        .bind(limit.map_or(-1, |n| i64::from(n.max(1))))
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        // (A limit of 0 still asks for one row, to know the repository.)
        let keep = limit.map_or(usize::MAX, |n| n as usize);
        Ok(Some(rows.into_iter().flatten().take(keep).collect()))
    }
    async fn tag_history(&self, repo: &str) -> Result<Option<Vec<TagInfo>>> {
        let Some(repo_id) = repository_id(&self.read, repo).await? else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT name, manifest_digest, updated_at FROM tags WHERE repository_id = $1
             ORDER BY updated_at DESC, name",
        )
        .bind(repo_id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|r| TagInfo {
                    name: r.get(0),
                    digest: r.get(1),
                    updated_at: r.get(2),
                })
                .collect(),
        ))
    }
}
