//! Repositories: readiness and the catalog.

use async_trait::async_trait;

use super::PostgresMeta;
use crate::meta::{RepositoryMeta, Result};

#[async_trait]
impl RepositoryMeta for PostgresMeta {
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<String>> {
        // Names are COLLATE "C": compared and sorted bytewise.
        Ok(sqlx::query_scalar(
            "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
        )
        .bind(last.unwrap_or(""))
        .bind(limit.map(i64::from))
        .fetch_all(&self.pool)
        .await?)
    }
}
