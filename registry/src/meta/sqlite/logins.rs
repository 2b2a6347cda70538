//! Failed logins (the rate limit's counts).

use async_trait::async_trait;
use sqlx::Row;

use super::{Durability, SqliteMeta};
use crate::meta::{LoginFailures, LoginMeta, Result};

#[async_trait]
impl LoginMeta for SqliteMeta {
    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>> {
        let row = sqlx::query("SELECT failures, window_start FROM login_failures WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| LoginFailures {
            failures: r.get::<i64, _>(0).max(0) as u32,
            window_start_ms: r.get(1),
        }))
    }

    async fn record_login_failure(&self, key: &str, now_ms: i64, window_ms: i64) -> Result<()> {
        let ended = now_ms - window_ms;
        let mut tx = self.begin(Durability::Process).await?;
        sqlx::query("DELETE FROM login_failures WHERE window_start <= ? AND key <> ?")
            .bind(ended)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO login_failures (key, failures, window_start) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN window_start <= ?3 THEN 1 ELSE failures + 1 END,
                window_start = CASE WHEN window_start <= ?3 THEN ?2 ELSE window_start END",
        )
        .bind(key)
        .bind(now_ms)
        .bind(ended)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_login_failures(&self, key: &str) -> Result<()> {
        self.write_one(
            Durability::Process,
            sqlx::query("DELETE FROM login_failures WHERE key = ?").bind(key),
        )
        .await?;
        Ok(())
    }
}
