//! Blobs, their links into repositories, and publication claims.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::quotas::check_quotas;
use super::{Mode, PostgresMeta, ensure_repository, repository_id};
use crate::meta::{BlobMeta, Claim, MetaError, Result, now_ms};
use crate::oci::digest::Digest;
use crate::settings::Quota;

impl PostgresMeta {
    /// Whether a blob row exists, read outside any write transaction.
    async fn blob_stored(&self, digest: &str) -> Result<bool> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl BlobMeta for PostgresMeta {
    async fn repository_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo)
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(size.map(|s| s as u64))
    }
    async fn blob(&self, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(size.map(|s| s as u64))
    }
    async fn blob_repositories(&self, digest: &Digest, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
    async fn claim_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        verified: bool,
        quotas: &[Quota],
    ) -> Result<Claim> {
        let digest = digest.to_string();
        if verified && self.blob_stored(&digest).await? {
            // Linking a stored blob is acknowledged to the client: full
            // durability. (If gc removed it meanwhile, this commits nothing
            // and the claim below follows.)
            let linked = transaction!(self, Mode::WRITE, |tx| link_if_stored(
                tx, repo, &digest, quotas
            )
            .await)?;
            if let Some(claim) = linked {
                return Ok(claim);
            }
        }
        transaction!(self, Mode::CLAIM, |tx| {
            if is_tombstoned(tx, &digest).await? {
                return Ok(Claim::Busy);
            }
            if !quotas.is_empty() {
                let linked = match repository_id(&mut *tx, repo).await? {
                    Some(id) => is_linked(tx, id, &digest).await?,
                    None => false,
                };
                check_quotas(tx, quotas, if linked { 0 } else { size }).await?;
            }
            sqlx::query(
                "INSERT INTO blob_claims (digest, claimed_at) VALUES ($1, $2)
                 ON CONFLICT (digest) DO UPDATE SET claimed_at = excluded.claimed_at",
            )
            .bind(&digest)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            Ok(Claim::Claimed)
        })
    }
    async fn release_claim(&self, digest: &Digest) -> Result<()> {
        let digest = digest.to_string();
        transaction!(self, Mode::CLAIM, |tx| {
            sqlx::query("DELETE FROM blob_claims WHERE digest = $1")
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }
    async fn link_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        quotas: &[Quota],
        upload: Option<&str>,
    ) -> Result<()> {
        let digest = digest.to_string();
        let refused = transaction!(self, Mode::WRITE, |tx| {
            let repo_id = ensure_repository(tx, repo).await?;
            let inserted = sqlx::query(
                "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&digest)
            .bind(size as i64)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let known = inserted.rows_affected() == 0;
            let claim = sqlx::query("DELETE FROM blob_claims WHERE digest = $1")
                .bind(&digest)
                .execute(&mut *tx)
                .await?;
            if claim.rows_affected() == 0 && !known {
                // gc took our claim for a dead publisher's and may have
                // deleted the bytes. (With a blob row, another publisher of
                // the same digest linked it first: the bytes are there.)
                return Err(MetaError::ClaimLost(digest.clone()));
            }
            let refused = if quotas.is_empty() || is_linked(tx, repo_id, &digest).await? {
                None
            } else {
                check_quotas(tx, quotas, size).await.err()
            };
            if refused.is_none() {
                upsert_link(tx, repo_id, &digest).await?;
                if let Some(id) = upload {
                    sqlx::query("DELETE FROM uploads WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            // Even when refused: the bytes are recorded (unlinked) for gc to find.
            Ok(refused)
        })?;
        refused.map_or(Ok(()), Err)
    }
    async fn mount_blob(&self, repo: &str, digest: &Digest, quotas: &[Quota]) -> Result<bool> {
        let digest = digest.to_string();
        transaction!(self, Mode::WRITE, |tx| {
            let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(size) = size else {
                return Ok(false);
            };
            let repo_id = ensure_repository(tx, repo).await?;
            if !is_linked(tx, repo_id, &digest).await? {
                check_quotas(tx, quotas, size as u64).await?;
            }
            upsert_link(tx, repo_id, &digest).await?;
            Ok(true)
        })
    }
    async fn break_stale_tombstone(&self, digest: &Digest, before_ms: i64) -> Result<bool> {
        let digest = digest.to_string();
        transaction!(self, Mode::CLAIM, |tx| {
            let done = sqlx::query("DELETE FROM blob_tombstones WHERE digest = $1 AND since < $2")
                .bind(&digest)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
    async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        transaction!(self, Mode::WRITE, |tx| {
            let done = sqlx::query(
                "DELETE FROM repository_blobs WHERE digest = $2
                 AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
            )
            .bind(repo)
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

pub(super) async fn is_tombstoned(tx: &mut PgConnection, digest: &str) -> Result<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM blob_tombstones WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found.is_some())
}

/// Links `digest` into `repo` if it is stored (a verified re-upload needs no
/// bytes written): `Linked`; `Busy` while gc deletes it; None when it is not
/// stored.
async fn link_if_stored(
    tx: &mut PgConnection,
    repo: &str,
    digest: &str,
    quotas: &[Quota],
) -> Result<Option<Claim>> {
    if is_tombstoned(tx, digest).await? {
        return Ok(Some(Claim::Busy));
    }
    let stored: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let repo_id = ensure_repository(tx, repo).await?;
    if !is_linked(tx, repo_id, digest).await? {
        check_quotas(tx, quotas, stored as u64).await?;
    }
    upsert_link(tx, repo_id, digest).await?;
    Ok(Some(Claim::Linked(stored as u64)))
}

pub(super) async fn is_linked(conn: &mut PgConnection, repo_id: i64, digest: &str) -> Result<bool> {
    let linked: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
    )
    .bind(repo_id)
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(linked.is_some())
}

/// Links a blob into a repository; linking again restarts its grace period
/// (an upload or mount of a blob the repository already had is fresh).
pub(super) async fn upsert_link(conn: &mut PgConnection, repo_id: i64, digest: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
    )
    .bind(repo_id)
    .bind(digest)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
