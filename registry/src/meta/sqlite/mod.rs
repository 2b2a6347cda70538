//! The embedded metadata store: SQLite in WAL mode. What a client is told
//! is stored is on disk before it hears about it (`Durability::Full`);
//! upload sessions and blob claims survive a process crash
//! (`Durability::Process`). Writes go through a single connection so they
//! queue in order instead of fighting over locks; reads use a pool, and
//! manifest lookups go through an in-process cache (`manifest_cache`) that
//! every change to tags or manifests invalidates. One file per aggregate,
//! as in `meta`.

mod blobs;
mod browse;
mod gc;
mod logins;
mod manifests;
mod mirror;
mod quotas;
mod repositories;
mod retention;
mod sif;
mod stats;
mod tags;
mod uploads;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};

use super::change_signal::ChangeSignal;
use super::manifest_cache::ManifestCache;
use super::{Result, now_ms};

pub struct SqliteMeta {
    read: SqlitePool,
    write: SqlitePool,
    manifests: ManifestCache,
}

impl SqliteMeta {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_file(path, true).await
    }

    async fn open_file(path: &Path, announce: bool) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let mut signal_path = path.as_os_str().to_owned();
        signal_path.push("-changes");
        let signal = ChangeSignal::file(Path::new(&signal_path), announce)?;
        Self::connect(options, signal).await
    }

    /// Opens an existing database (maintenance commands never create one);
    /// None if there is no file at `path`.
    pub async fn open_existing(path: &Path) -> Result<Option<Self>> {
        if !path.is_file() {
            return Ok(None);
        }
        Self::open_file(path, false).await.map(Some)
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
    pub(super) async fn begin(
        &self,
        durability: Durability,
    ) -> Result<sqlx::Transaction<'static, Sqlite>> {
        // One command, so no write ever runs with the level the previous
        // one left on the shared connection.
        let begin = match durability {
            Durability::Full => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
            Durability::Process => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
        };
        Ok(self.write.begin_with(begin).await?)
    }

    /// Runs one statement as its own write transaction.
    pub(super) async fn write_one(
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
pub(super) enum Durability {
    /// On disk (the WAL is fsynced): everything a client is told is stored
    /// (blobs linked, manifests, tags) and every deletion.
    Full,
    /// In the WAL, not yet fsynced: survives the process, not the machine.
    /// For upload sessions and blob claims, which a client that lost them
    /// simply starts again; the next `Full` commit makes them durable too
    /// (the WAL is written in order). Saves an fsync per step of a push.
    Process,
}

/// Inserts the repository if needed and returns its id.
pub(super) async fn ensure_repository(tx: &mut sqlx::SqliteConnection, repo: &str) -> Result<i64> {
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

pub(super) async fn repository_id<'e, E>(exec: E, repo: &str) -> Result<Option<i64>>
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
