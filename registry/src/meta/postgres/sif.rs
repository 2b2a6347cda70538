//! SIF descriptions of blobs.

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Row;

use super::{Mode, PostgresMeta};
use crate::meta::sif::{description_columns, record_from_columns};
use crate::meta::{Result, SifMeta, SifRecord, now_ms};
use crate::oci::digest::Digest;

#[async_trait]
impl SifMeta for PostgresMeta {
    async fn sif_record(&self, digest: &Digest) -> Result<Option<SifRecord>> {
        let row = sqlx::query(
            "SELECT description, error, library_config_digest, library_config
             FROM sif_blobs WHERE digest = $1",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| record_from_columns(digest, r.get(0), r.get(1), r.get(2), r.get(3)))
            .transpose()
    }

    async fn put_sif_record(&self, record: &SifRecord) -> Result<bool> {
        let (description, error) = description_columns(record)?;
        let (config_digest, config) = match &record.library_config {
            Some((d, bytes)) => (Some(d.to_string()), Some(bytes.to_vec())),
            None => (None, None),
        };
        let digest = record.digest.to_string();
        // Under the writers' lock, as gc's deletes: only for a stored blob
        // (no foreign key error if gc took it first).
        transaction!(self, Mode::WRITE, |tx| {
            let done = sqlx::query(
                "INSERT INTO sif_blobs
                    (digest, description, error, library_config_digest, library_config, described_at)
                 SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = $1)
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&digest)
            .bind(&description)
            .bind(&error)
            .bind(&config_digest)
            .bind(&config)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn library_config(&self, repo: &str, config: &Digest) -> Result<Option<Bytes>> {
        let found: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT s.library_config FROM sif_blobs s
             JOIN repository_blobs rb ON rb.digest = s.digest
             JOIN repositories r ON r.id = rb.repository_id
             WHERE r.name = $1 AND s.library_config_digest = $2
             LIMIT 1",
        )
        .bind(repo)
        .bind(config.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.map(Bytes::from))
    }
}
