//! Repositories: readiness and the catalog.

use async_trait::async_trait;

use super::SqliteMeta;
use crate::meta::{RepositoryMeta, Result};

#[async_trait]
impl RepositoryMeta for SqliteMeta {
    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<String>> {
        let limit = limit.map_or(-1, i64::from);
        Ok(sqlx::query_scalar(
            "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
        )
        .bind(last.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }
}
