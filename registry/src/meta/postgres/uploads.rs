//! Upload sessions. Their transactions do not take the writers' lock: each
//! touches one session's rows and is correct at READ COMMITTED (see the
//! module's docs in `postgres`).

use async_trait::async_trait;
use sqlx::Row;

use super::{Mode, PostgresMeta};
use crate::meta::{NewPart, Result, Upload, UploadMeta, now_ms};

#[async_trait]
impl UploadMeta for PostgresMeta {
    async fn create_upload(&self, repo: &str, id: &str) -> Result<()> {
        transaction!(self, Mode::SESSION, |tx| {
            sqlx::query(
                "INSERT INTO uploads (id, repository, size, hash_state, created_at, updated_at)
                 VALUES ($1, $2, 0, NULL, $3, $3)",
            )
            .bind(id)
            .bind(repo)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }
    async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        let Some(row) =
            sqlx::query("SELECT repository, size, hash_state FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let size = row.get::<i64, _>(1) as u64;
        let parts = if size == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT name FROM upload_parts WHERE upload_id = $1 ORDER BY part_offset",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(Some(Upload {
            id: id.to_string(),
            repository: row.get(0),
            size,
            hash_state: row.get(2),
            parts,
        }))
    }
    async fn append_upload_part(&self, id: &str, offset: u64, part: NewPart<'_>) -> Result<bool> {
        let part = &part;
        transaction!(self, Mode::SESSION, |tx| {
            // The compare and swap: a concurrent append of the same session
            // holds the row until it commits; this UPDATE then re-checks
            // `size = $2` against the committed row, and matches nothing.
            let done = sqlx::query(
                "UPDATE uploads SET size = size + $3, hash_state = $4, updated_at = $5
                 WHERE id = $1 AND size = $2",
            )
            .bind(id)
            .bind(offset as i64)
            .bind(part.size as i64)
            .bind(part.hash_state.as_deref())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO upload_parts (upload_id, part_offset, name, size)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(offset as i64)
            .bind(part.name)
            .bind(part.size as i64)
            .execute(&mut *tx)
            .await?;
            Ok(true)
        })
    }
    async fn delete_upload(&self, id: &str) -> Result<()> {
        transaction!(self, Mode::SESSION, |tx| {
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }
    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
                .bind(before_ms)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
