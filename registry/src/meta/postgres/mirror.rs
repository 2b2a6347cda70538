//! The pull-through cache's records (see `meta::mirror`): single-row
//! statements outside the writer lock.

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresMeta;
use crate::meta::{MirrorMeta, Pulled, Result};

#[async_trait]
impl MirrorMeta for PostgresMeta {
    async fn tag_checked_at(&self, repo: &str, tag: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT checked_at FROM mirror_tags WHERE repository = $1 AND tag = $2",
        )
        .bind(repo)
        .bind(tag)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn set_tag_checked(&self, repo: &str, tag: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO mirror_tags (repository, tag, checked_at) VALUES ($1, $2, $3)
             ON CONFLICT (repository, tag) DO UPDATE SET checked_at = $3",
        )
        .bind(repo)
        .bind(tag)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_fetch(
        &self,
        key: &str,
        owner: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO mirror_fetches (key, owner, claimed_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET owner = $2, claimed_at = $3
             WHERE mirror_fetches.claimed_at < $4 OR mirror_fetches.owner = $2",
        )
        .bind(key)
        .bind(owner)
        .bind(now)
        .bind(stale_before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_fetch(&self, key: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM mirror_fetches WHERE key = $1 AND owner = $2")
            .bind(key)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_pull(&self, repo: &str, digest: &str, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO mirror_pulls (repository, manifest, pulled_at) VALUES ($1, $2, $3)
             ON CONFLICT (repository, manifest) DO UPDATE SET pulled_at = $3",
        )
        .bind(repo)
        .bind(digest)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn least_recently_pulled(&self, prefix: &str, limit: u32) -> Result<Vec<Pulled>> {
        let rows = sqlx::query(
            "SELECT repository, manifest, pulled_at FROM mirror_pulls
             WHERE starts_with(repository, $1)
             ORDER BY pulled_at, repository, manifest LIMIT $2",
        )
        .bind(prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Pulled {
                repository: r.get(0),
                manifest: r.get(1),
                pulled_at: r.get(2),
            })
            .collect())
    }

    async fn forget_pull(&self, repo: &str, digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM mirror_pulls WHERE repository = $1 AND manifest = $2")
            .bind(repo)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
