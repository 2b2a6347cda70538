//! The embedded metadata store: SQLite in WAL mode. What a client is told
//! is stored is on disk before it hears about it (`Durability::Full`);
//! upload sessions and blob claims survive a process crash
//! (`Durability::Process`). Writes go through a single connection so they
//! queue in order instead of fighting over locks; reads use a pool, and
//! manifest lookups go through an in-process cache (`manifest_cache`) that
//! every change to tags or manifests invalidates. Maintenance queries (gc,
//! retention, usage, quotas) are in `maintenance.rs`.

mod maintenance;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool};

use super::change_signal::ChangeSignal;
use super::manifest_cache::ManifestCache;
use super::{
    Claim, DoomedBlob, GcPlan, MaintenanceRun, ManifestRecord, MetaError, MetaStore, NewManifest,
    NewPart, Reference, Referrer, RepoSweep, RepoUsage, Result, StoreStats, SweepRules, TagInfo,
    Upload, now_ms,
};
use crate::digest::Digest;
use crate::settings::Quota;
use maintenance::{check_quotas, is_linked, sweep_repo, tombstone_blobs, upsert_link};

pub struct SqliteMeta {
    read: SqlitePool,
    write: SqlitePool,
    manifests: ManifestCache,
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
        let mut signal_path = path.as_os_str().to_owned();
        signal_path.push("-changes");
        let signal = ChangeSignal::file(Path::new(&signal_path))?;
        Self::connect(options, signal).await
    }

    /// A private in-memory database (tests).
    pub async fn memory() -> Result<Self> {
        // A shared-cache memory database so the read and write pools see one database.
        let name = format!(
            "file:berth-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4()
        );
        let options = SqliteConnectOptions::from_str(&name)?.foreign_keys(true);
        Self::connect(options, ChangeSignal::in_process()).await
    }

    async fn connect(options: SqliteConnectOptions, signal: ChangeSignal) -> Result<Self> {
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_release(|conn, _| Box::pin(discard_if_in_transaction(conn)))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.read_only(false))
            .await?;
        Ok(Self {
            read,
            write,
            manifests: ManifestCache::new(signal),
        })
    }

    /// Begins a write transaction that reaches the disk as `durability` says.
    async fn begin(&self, durability: Durability) -> Result<sqlx::Transaction<'static, Sqlite>> {
        // One command, so no write ever runs with the level the previous
        // one left on the shared connection.
        let begin = match durability {
            Durability::Full => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
            Durability::Process => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
        };
        Ok(self.write.begin_with(begin).await?)
    }

    /// Whether a blob row exists, read outside any write transaction.
    async fn blob_stored(&self, digest: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.read)
            .await?;
        Ok(found.is_some())
    }

    /// Runs one statement as its own write transaction.
    async fn write_one(
        &self,
        durability: Durability,
        query: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
    ) -> Result<SqliteQueryResult> {
        let mut tx = self.begin(durability).await?;
        let done = query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// Whether the writer connection may go back to the pool: not while it is
/// still inside a transaction. A COMMIT that failed (the disk was full, say)
/// leaves sqlx's transaction depth behind and every later BEGIN would fail
/// until a restart; such a connection is closed instead, and the pool opens
/// a clean one for the next write. (A rollback queued by a dropped
/// transaction is flushed by the ping before the depth is looked at.)
async fn discard_if_in_transaction(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<bool> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "a write transaction did not end cleanly; reopening the database connection"
        );
        return Ok(false);
    }
    Ok(true)
}

/// How far a committed write has reached when `commit` returns.
#[derive(Clone, Copy, Debug)]
enum Durability {
    /// On disk (the WAL is fsynced): everything a client is told is stored
    /// (blobs linked, manifests, tags) and every deletion.
    Full,
    /// In the WAL, not yet fsynced: survives the process, not the machine.
    /// For upload sessions and blob claims, which a client that lost them
    /// simply starts again; the next `Full` commit makes them durable too
    /// (the WAL is written in order). Saves an fsync per step of a push.
    Process,
}

async fn is_tombstoned(tx: &mut sqlx::SqliteConnection, digest: &str) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blob_tombstones WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found.is_some())
}

/// Links `digest` into `repo` if it is stored (a verified re-upload needs no
/// bytes written): `Linked`; `Busy` while gc deletes it; None when it is not
/// stored.
async fn link_if_stored(
    tx: &mut sqlx::SqliteConnection,
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

/// Inserts the repository if needed and returns its id.
async fn ensure_repository(tx: &mut sqlx::SqliteConnection, repo: &str) -> Result<i64> {
    if let Some(id) = repository_id(&mut *tx, repo).await? {
        return Ok(id);
    }
    // Inside a write transaction: no one else inserts it meanwhile.
    let id = sqlx::query_scalar(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) RETURNING id",
    )
    .bind(repo)
    .bind(now_ms())
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

    async fn blob_repositories(&self, digest: &Digest, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
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
            let mut tx = self.begin(Durability::Full).await?;
            let linked = link_if_stored(&mut tx, repo, &digest, quotas).await?;
            tx.commit().await?;
            if let Some(claim) = linked {
                return Ok(claim);
            }
        }
        let mut tx = self.begin(Durability::Process).await?;
        if is_tombstoned(&mut tx, &digest).await? {
            return Ok(Claim::Busy);
        }
        if !quotas.is_empty() {
            let linked = match repository_id(&mut *tx, repo).await? {
                Some(id) => is_linked(&mut tx, id, &digest).await?,
                None => false,
            };
            check_quotas(&mut tx, quotas, if linked { 0 } else { size }).await?;
        }
        sqlx::query(
            "INSERT INTO blob_claims (digest, claimed_at) VALUES ($1, $2)
             ON CONFLICT (digest) DO UPDATE SET claimed_at = excluded.claimed_at",
        )
        .bind(&digest)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Claim::Claimed)
    }

    async fn release_claim(&self, digest: &Digest) -> Result<()> {
        let query =
            sqlx::query("DELETE FROM blob_claims WHERE digest = $1").bind(digest.to_string());
        self.write_one(Durability::Process, query).await?;
        Ok(())
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
        let mut tx = self.begin(Durability::Full).await?;
        let repo_id = ensure_repository(&mut tx, repo).await?;
        let inserted = sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING")
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
            // gc took our claim for a dead publisher's and may have deleted
            // the bytes. (With a blob row, another publisher of the same
            // digest linked it first: the bytes are there.)
            return Err(MetaError::ClaimLost(digest));
        }
        let refused = if quotas.is_empty() || is_linked(&mut tx, repo_id, &digest).await? {
            None
        } else {
            check_quotas(&mut tx, quotas, size).await.err()
        };
        if refused.is_none() {
            upsert_link(&mut tx, repo_id, &digest).await?;
            if let Some(id) = upload {
                sqlx::query("DELETE FROM uploads WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Even when refused: the bytes are recorded (unlinked) for gc to find.
        tx.commit().await?;
        refused.map_or(Ok(()), Err)
    }

    async fn mount_blob(&self, repo: &str, digest: &Digest, quotas: &[Quota]) -> Result<bool> {
        let digest = digest.to_string();
        let mut tx = self.begin(Durability::Full).await?;
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(size) = size else {
            return Ok(false);
        };
        let repo_id = ensure_repository(&mut tx, repo).await?;
        if !is_linked(&mut tx, repo_id, &digest).await? {
            check_quotas(&mut tx, quotas, size as u64).await?;
        }
        upsert_link(&mut tx, repo_id, &digest).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn break_stale_tombstone(&self, digest: &Digest, before_ms: i64) -> Result<bool> {
        let query = sqlx::query("DELETE FROM blob_tombstones WHERE digest = $1 AND since < $2")
            .bind(digest.to_string())
            .bind(before_ms);
        let done = self.write_one(Durability::Process, query).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(digest.to_string());
        let done = self.write_one(Durability::Full, query).await?;
        Ok(done.rows_affected() > 0)
    }

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
        for blob in m.blobs {
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
        for child in m.manifests {
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

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM tags WHERE name = $2
             AND repository_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(tag);
        let done = self.write_one(Durability::Full, query).await?;
        self.manifests.changed();
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
        let query = sqlx::query(
            "INSERT INTO uploads (id, repository, size, hash_state, created_at, updated_at)
             VALUES ($1, $2, 0, NULL, $3, $3)",
        )
        .bind(id)
        .bind(repo)
        .bind(now_ms());
        self.write_one(Durability::Process, query).await?;
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
        let size = row.get::<i64, _>(1) as u64;
        let parts = if size == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT name FROM upload_parts WHERE upload_id = $1 ORDER BY offset")
                .bind(id)
                .fetch_all(&self.read)
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
        let mut tx = self.begin(Durability::Process).await?;
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
        let query = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id);
        self.write_one(Durability::Process, query).await?;
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
    async fn stats(&self) -> Result<StoreStats> {
        maintenance::stats(&self.read).await
    }

    async fn usage(&self) -> Result<Vec<RepoUsage>> {
        maintenance::usage(&self.read).await
    }

    async fn tag_history(&self, repo: &str) -> Result<Option<Vec<TagInfo>>> {
        let Some(repo_id) = repository_id(&self.read, repo).await? else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT name, manifest_digest, updated_at FROM tags WHERE repository_id = $1
             ORDER BY updated_at DESC, name",
        )
        .bind(repo_id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|r| TagInfo {
                    name: r.get(0),
                    digest: r.get(1),
                    updated_at: r.get(2),
                })
                .collect(),
        ))
    }

    async fn apply_retention(
        &self,
        repo: &str,
        tags: &[TagInfo],
        untagged_cutoff_ms: Option<i64>,
        dry_run: bool,
    ) -> Result<(Vec<TagInfo>, Vec<String>)> {
        let mut tx = self.begin(Durability::Full).await?;
        let Some(repo_id) = repository_id(&mut *tx, repo).await? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut deleted = Vec::new();
        for tag in tags {
            let done = sqlx::query(
                "DELETE FROM tags WHERE repository_id = $1 AND name = $2
                 AND manifest_digest = $3 AND updated_at = $4",
            )
            .bind(repo_id)
            .bind(&tag.name)
            .bind(&tag.digest)
            .bind(tag.updated_at)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                deleted.push(tag.clone());
            }
        }
        let manifests = match untagged_cutoff_ms {
            Some(cutoff_ms) => {
                let rules = SweepRules {
                    cutoff_ms,
                    delete_untagged: true,
                    sweep_links: false,
                    claim_cutoff_ms: cutoff_ms,
                };
                sweep_repo(&mut tx, repo_id, rules).await?.manifests
            }
            None => Vec::new(),
        };
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
            self.manifests.changed();
        }
        Ok((deleted, manifests))
    }

    async fn sweep_repository(&self, repo: &str, rules: SweepRules) -> Result<RepoSweep> {
        let mut tx = self.begin(Durability::Full).await?;
        let Some(repo_id) = repository_id(&mut *tx, repo).await? else {
            return Ok(RepoSweep::default());
        };
        let sweep = sweep_repo(&mut tx, repo_id, rules).await?;
        tx.commit().await?;
        self.manifests.changed();
        Ok(sweep)
    }

    async fn tombstone_unlinked_blobs(
        &self,
        rules: SweepRules,
        limit: u32,
    ) -> Result<Vec<DoomedBlob>> {
        let mut tx = self.begin(Durability::Full).await?;
        let doomed = tombstone_blobs(&mut tx, rules, Some(limit)).await?;
        tx.commit().await?;
        Ok(doomed)
    }

    async fn clear_tombstones(&self, digests: &[String]) -> Result<()> {
        let digests = serde_json::to_string(digests)
            .map_err(|e| MetaError::Database(sqlx::Error::Encode(Box::new(e))))?;
        let query = sqlx::query(
            "DELETE FROM blob_tombstones WHERE digest IN (SELECT value FROM json_each($1))",
        )
        .bind(digests);
        self.write_one(Durability::Full, query).await?;
        Ok(())
    }

    async fn stale_tombstones(&self, before_ms: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT digest FROM blob_tombstones WHERE since < $1")
                .bind(before_ms)
                .fetch_all(&self.read)
                .await?,
        )
    }

    async fn plan_gc(&self, rules: SweepRules) -> Result<GcPlan> {
        let mut tx = self.begin(Durability::Process).await?;
        let repos: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM repositories ORDER BY name")
                .fetch_all(&mut *tx)
                .await?;
        let mut plan = GcPlan::default();
        for (id, name) in repos {
            let sweep = sweep_repo(&mut tx, id, rules).await?;
            plan.repositories.push((name, sweep));
        }
        plan.blobs = tombstone_blobs(&mut tx, rules, None).await?;
        // A plan only: nothing changes.
        tx.rollback().await?;
        Ok(plan)
    }

    async fn record_run(&self, run: &MaintenanceRun) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO maintenance_runs (kind, started_at, finished_at, dry_run, ok,
               deleted_blobs, deleted_manifests, deleted_tags, deleted_bytes, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(run.kind)
        .bind(run.started_ms)
        .bind(run.finished_ms)
        .bind(run.dry_run)
        .bind(run.ok)
        .bind(run.deleted_blobs as i64)
        .bind(run.deleted_manifests as i64)
        .bind(run.deleted_tags as i64)
        .bind(run.deleted_bytes as i64)
        .bind(&run.detail);
        self.write_one(Durability::Full, query).await?;
        Ok(())
    }
}
