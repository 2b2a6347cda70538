//! Manifests, their references and referrers.

use async_trait::async_trait;
use sqlx::Row;

use super::quotas::check_quotas;
use super::{Durability, SqliteMeta, ensure_repository, repository_id};
use crate::meta::{
    ManifestMeta, ManifestRecord, MetaError, NewManifest, Reference, Referrer, Result, now_ms,
};
use crate::oci::digest::Digest;

#[async_trait]
impl ManifestMeta for SqliteMeta {
    async fn manifest(
        &self,
        repo: &str,
        reference: Reference<'_>,
    ) -> Result<Option<ManifestRecord>> {
        let ticket = match self.manifests.get(repo, reference) {
            Ok(hit) => return Ok(Some(hit)),
            Err(ticket) => ticket,
        };
        let query = match reference {
            Reference::Tag(tag) => sqlx::query(
                "SELECT m.digest, m.media_type, m.content FROM tags t
                 JOIN repositories r ON r.id = t.repository_id
                 JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
                 WHERE r.name = $1 AND t.name = $2",
            )
            .bind(repo)
            .bind(tag.to_string()),
            Reference::Digest(digest) => sqlx::query(
                "SELECT m.digest, m.media_type, m.content FROM manifests m
                 JOIN repositories r ON r.id = m.repository_id
                 WHERE r.name = $1 AND m.digest = $2",
            )
            .bind(repo)
            .bind(digest.to_string()),
        };
        let Some(row) = query.fetch_optional(&self.read).await? else {
            return Ok(None);
        };
        let record = ManifestRecord {
            digest: row.get(0),
            media_type: row.get(1),
            content: row.get::<Vec<u8>, _>(2).into(),
        };
        self.manifests.fill(ticket, repo, reference, &record);
        Ok(Some(record))
    }
    async fn put_manifest(&self, repo: &str, m: NewManifest<'_>) -> Result<()> {
        let mut tx = self.begin(Durability::Full).await?;
        let repo_id = ensure_repository(&mut tx, repo).await?;
        for blob in m.blobs.iter().filter(|_| m.check_children) {
            let stored: Option<i64> = sqlx::query_scalar(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
                 WHERE rb.repository_id = $1 AND rb.digest = $2",
            )
            .bind(repo_id)
            .bind(blob.digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let stored = stored.ok_or_else(|| MetaError::BlobUnknown(blob.digest.to_string()))?;
            blob.check_size(stored.max(0) as u64)?;
        }
        for child in m.manifests.iter().filter(|_| m.check_children) {
            let stored: Option<i64> = sqlx::query_scalar(
                "SELECT length(content) FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repo_id)
            .bind(child.digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let stored =
                stored.ok_or_else(|| MetaError::ManifestUnknown(child.digest.to_string()))?;
            child.check_size(stored.max(0) as u64)?;
        }
        let digest = m.digest.to_string();
        for tag in m.tags {
            let Some(pattern) = m
                .immutable_tags
                .iter()
                .find(|p| crate::pattern::matches(p, tag))
            else {
                continue;
            };
            let current: Option<String> = sqlx::query_scalar(
                "SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2",
            )
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(&mut *tx)
            .await?;
            if current.is_some_and(|c| c != digest) {
                return Err(MetaError::TagImmutable {
                    tag: tag.clone(),
                    pattern: pattern.clone(),
                });
            }
        }
        if !m.quotas.is_empty() {
            let present: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repo_id)
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?;
            if present.is_none() {
                check_quotas(&mut tx, m.quotas, m.content.len() as u64).await?;
            }
        }
        let now = now_ms();
        // Same digest means same bytes: an existing row is already right,
        // but it was pushed again now (gc's grace period counts from here).
        sqlx::query(
            "INSERT INTO manifests
               (repository_id, digest, media_type, artifact_type, subject, annotations, content, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
        )
        .bind(repo_id)
        .bind(&digest)
        .bind(m.media_type)
        .bind(m.artifact_type)
        .bind(m.subject.map(|s| s.to_string()))
        .bind(m.annotations)
        .bind(m.content)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let children = m
            .blobs
            .iter()
            .map(|d| (&d.digest, false))
            .chain(m.manifests.iter().map(|d| (&d.digest, true)));
        for (child, is_manifest) in children {
            sqlx::query(
                "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, is_manifest)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(repo_id)
            .bind(&digest)
            .bind(child.to_string())
            .bind(is_manifest)
            .execute(&mut *tx)
            .await?;
        }
        for tag in m.tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (repository_id, name) DO UPDATE
                 SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
            )
            .bind(repo_id)
            .bind(tag)
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.manifests.changed();
        Ok(())
    }
    async fn delete_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        immutable_tags: &[String],
    ) -> Result<bool> {
        let digest = digest.to_string();
        let mut tx = self.begin(Durability::Full).await?;
        let Some(repo_id) = repository_id(&mut *tx, repo).await? else {
            return Ok(false);
        };
        if !immutable_tags.is_empty() {
            let tags: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
            )
            .bind(repo_id)
            .bind(&digest)
            .fetch_all(&mut *tx)
            .await?;
            for tag in tags {
                if let Some(p) = immutable_tags
                    .iter()
                    .find(|p| crate::pattern::matches(p, &tag))
                {
                    return Err(MetaError::TagImmutable {
                        tag,
                        pattern: p.clone(),
                    });
                }
            }
        }
        // Tags and references go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.manifests.changed();
        Ok(done.rows_affected() > 0)
    }
    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, length(m.content), m.artifact_type, m.annotations
             FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = $1 AND m.subject = $2 AND ($3 IS NULL OR m.artifact_type = $3)
             ORDER BY m.created_at, m.digest",
        )
        .bind(repo)
        .bind(subject.to_string())
        .bind(artifact_type)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Referrer {
                digest: row.get(0),
                media_type: row.get(1),
                size: row.get::<i64, _>(2) as u64,
                artifact_type: row.get(3),
                annotations: row.get(4),
            })
            .collect())
    }
}
