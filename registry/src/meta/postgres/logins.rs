//! Failed logins (the rate limit's counts), shared by every replica. Plain
//! statements outside the writer lock: each touches only its key's row.

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresMeta;
use crate::meta::{LoginFailures, LoginMeta, Result};

#[async_trait]
impl LoginMeta for PostgresMeta {
    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>> {
        let row = sqlx::query("SELECT failures, window_start FROM login_failures WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| LoginFailures {
            failures: r.get::<i32, _>(0).max(0) as u32,
            window_start_ms: r.get(1),
        }))
    }

    async fn record_login_failure(&self, key: &str, now_ms: i64, window_ms: i64) -> Result<()> {
        let ended = now_ms - window_ms;
        sqlx::query("DELETE FROM login_failures WHERE window_start <= $1 AND key <> $2")
            .bind(ended)
            .bind(key)
            .execute(&self.pool)
            .await?;
        // One statement: concurrent failures on two replicas both count.
        sqlx::query(
            "INSERT INTO login_failures (key, failures, window_start) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN login_failures.window_start <= $3 THEN 1
                                ELSE login_failures.failures + 1 END,
                window_start = CASE WHEN login_failures.window_start <= $3 THEN $2
                                    ELSE login_failures.window_start END",
        )
        .bind(key)
        .bind(now_ms)
        .bind(ended)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_login_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
