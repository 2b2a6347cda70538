//! The embedded metadata store: SQLite in WAL mode, fully synchronous (a
//! commit is on disk before the client hears about it). Writes go through a
//! single connection so they queue in order instead of fighting over locks;
//! reads use a pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    ManifestRecord, MetaError, MetaStore, NewManifest, NewPart, Reference, Referrer, Result,
    Upload, now_ms,
};
use crate::digest::Digest;

pub struct SqliteMeta {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteMeta {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        Self::connect(options).await
    }

    /// A private in-memory database (tests).
    pub async fn memory() -> Result<Self> {
        // A shared-cache memory database so the read and write pools see one database.
        let name = format!(
            "file:berth-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4()
        );
        let options = SqliteConnectOptions::from_str(&name)?.foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self> {
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.read_only(false))
            .await?;
        Ok(Self { read, write })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Inserts the repository if needed and returns its id.
async fn ensure_repository(tx: &mut sqlx::SqliteConnection, repo: &str) -> Result<i64> {
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(repo)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let id = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
        .bind(repo)
        .fetch_one(&mut *tx)
        .await?;
    Ok(id)
}

async fn repository_id<'e, E>(exec: E, repo: &str) -> Result<Option<i64>>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(
        sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_optional(exec)
            .await?,
    )
}

#[async_trait]
impl MetaStore for SqliteMeta {
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

    async fn repository_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(size.map(|s| s as u64))
    }

    async fn blob(&self, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(size.map(|s| s as u64))
    }

    async fn link_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<()> {
        let mut tx = self.begin().await?;
        let repo_id = ensure_repository(&mut tx, repo).await?;
        let now = now_ms();
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING")
            .bind(digest.to_string())
            .bind(size as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let mut tx = self.begin().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Ok(false);
        }
        let repo_id = ensure_repository(&mut tx, repo).await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(digest.to_string())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn manifest(
        &self,
        repo: &str,
        reference: Reference<'_>,
    ) -> Result<Option<ManifestRecord>> {
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
        let row = query.fetch_optional(&self.read).await?;
        Ok(row.map(|row| ManifestRecord {
            digest: row.get(0),
            media_type: row.get(1),
            content: row.get(2),
        }))
    }

    async fn put_manifest(&self, repo: &str, m: NewManifest<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        let repo_id = ensure_repository(&mut tx, repo).await?;
        for blob in m.blobs {
            let present: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repo_id)
            .bind(blob.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if present.is_none() {
                return Err(MetaError::BlobUnknown(blob.to_string()));
            }
        }
        for child in m.manifests {
            let present: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(repo_id)
            .bind(child.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if present.is_none() {
                return Err(MetaError::ManifestUnknown(child.to_string()));
            }
        }
        let digest = m.digest.to_string();
        let now = now_ms();
        // Same digest means same bytes: an existing row is already right.
        sqlx::query(
            "INSERT INTO manifests
               (repository_id, digest, media_type, artifact_type, subject, annotations, content, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (repository_id, digest) DO NOTHING",
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
            .map(|d| (d, false))
            .chain(m.manifests.iter().map(|d| (d, true)));
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
        Ok(())
    }

    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        // Tags and references go with it (ON DELETE CASCADE).
        let done = sqlx::query(
            "DELETE FROM manifests WHERE digest = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(digest.to_string())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM tags WHERE name = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(tag)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Option<Vec<String>>> {
        let Some(repo_id) = repository_id(&self.read, repo).await? else {
            return Ok(None);
        };
        let tags = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(limit.map_or(-1, i64::from))
        .fetch_all(&self.read)
        .await?;
        Ok(Some(tags))
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

    async fn create_upload(&self, repo: &str, id: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO uploads (id, repository, size, hash_state, created_at, updated_at)
             VALUES ($1, $2, 0, NULL, $3, $3)",
        )
        .bind(id)
        .bind(repo)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        let Some(row) =
            sqlx::query("SELECT repository, size, hash_state FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let parts = sqlx::query_scalar(
            "SELECT name FROM upload_parts WHERE upload_id = $1 ORDER BY offset",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(Upload {
            id: id.to_string(),
            repository: row.get(0),
            size: row.get::<i64, _>(1) as u64,
            hash_state: row.get(2),
            parts,
        }))
    }

    async fn append_upload_part(&self, id: &str, offset: u64, part: NewPart<'_>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE uploads SET size = size + $3, hash_state = $4, updated_at = $5
             WHERE id = $1 AND size = $2",
        )
        .bind(id)
        .bind(offset as i64)
        .bind(part.size as i64)
        .bind(part.hash_state)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, offset, name, size) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(offset as i64)
        .bind(part.name)
        .bind(part.size as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn stale_uploads(&self, before_ms: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < $1")
                .bind(before_ms)
                .fetch_all(&self.read)
                .await?,
        )
    }
}
