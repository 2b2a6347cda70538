//! The metadata store on PostgreSQL, for several processes (on several
//! hosts) sharing one database. Same tables, queries, transactions and
//! results as the SQLite store (`meta::sqlite`), one file per aggregate.
//!
//! # Concurrency: writers are serialised, as on SQLite
//!
//! SQLite runs one write transaction at a time (BEGIN IMMEDIATE on a single
//! writer connection), and the protocols above rely on it: a claim and gc's
//! tombstoning of the same digest, a quota check and the link it allows,
//! a manifest's reference check and gc's sweep of what it references,
//! retention's compare-and-delete of tags. Here every write transaction
//! starts by taking one transaction-level advisory lock
//! (`pg_advisory_xact_lock`, the same key in every process), held until
//! COMMIT or ROLLBACK: exactly SQLite's model, across processes and hosts.
//! At READ COMMITTED each statement then sees every transaction committed
//! before the lock was granted (PostgreSQL makes a commit visible before it
//! releases its locks), so a write transaction reads what a serial
//! execution would, and the reasoning written for SQLite holds unchanged.
//!
//! Why a lock rather than SERIALIZABLE with retries: the quota check reads
//! the usage of every matching repository and gc's sweeps read whole
//! repositories, so under SSI nearly every concurrent push would conflict
//! with them and fail at commit; retried bodies would then run under load
//! exactly when retries hurt most, and a bounded retry turns that into
//! errors for clients. The lock makes writers wait instead (bounded by
//! `statement_timeout`), costs one round trip, and is simple to reason
//! about. Write transactions are short (no I/O to the blob store happens
//! inside one), so the serialisation costs what it costs SQLite today.
//!
//! The one exception is upload sessions (create, append, delete): each
//! touches only its own session's rows and is correct at READ COMMITTED on
//! its own (the append's `UPDATE … WHERE size = $offset` waits for a
//! concurrent append of the same session and then re-checks its condition,
//! so two racing appends cannot both win), and they are the most frequent
//! writes of a chunked push. Writers that read sessions (link_blob deleting
//! one, gc keeping a repository with one open) see each as either before or
//! after them, as on SQLite.
//!
//! Every transaction still runs through [`transaction!`], which retries the
//! whole body a few times on serialization failures and deadlocks (SQLSTATE
//! 40001, 40P01): with the lock neither should happen, but a retry is
//! cheaper than an error if a DBA's setting (e.g.
//! `default_transaction_isolation`) makes one appear.
//!
//! # Durability
//!
//! `Durability::Full` commits with `synchronous_commit = on` (set for every
//! session: the WAL is flushed before COMMIT returns); `Durability::Process`
//! sets it `off` for the transaction (`SET LOCAL`): visible at once, flushed
//! within PostgreSQL's `wal_writer_delay`, lost only if the database server
//! crashes first.
//!
//! # No manifest cache
//!
//! Every manifest lookup is a query. Replicas behind a load balancer must
//! read their writes: a client that deleted a tag through one replica and
//! asks another a millisecond later must get 404 (the OCI conformance
//! suite does exactly that). An in-process cache invalidated by
//! notifications (LISTEN/NOTIFY) is stale for as long as a notification
//! takes to arrive; nothing short of asking the database is fresh.

/// Runs `$body` (an expression that may use `?` and `return`, with `$tx`:
/// `&mut PgConnection` inside the transaction) in a transaction begun in
/// `$mode`: committed (or, per the mode, rolled back) when the body returns
/// Ok, rolled back when it returns Err. A serialization failure or deadlock
/// anywhere, commit included, runs the whole body again, a few times at
/// most. The body must therefore only read what it captures (clone, never
/// move, out of the surroundings).
macro_rules! transaction {
    ($meta:expr, $mode:expr, |$tx:ident| $body:expr) => {{
        let meta: &$crate::meta::postgres::PostgresMeta = $meta;
        let mode: $crate::meta::postgres::Mode = $mode;
        let mut attempt: u32 = 0;
        loop {
            let outcome: $crate::meta::Result<_> = async {
                let mut txn = meta.begin(mode).await?;
                let value = {
                    let $tx: &mut sqlx::PgConnection = &mut *txn;
                    let value: $crate::meta::Result<_> = async { $body }.await;
                    value?
                };
                match mode.end {
                    $crate::meta::postgres::End::Commit => txn.commit().await?,
                    $crate::meta::postgres::End::Rollback => txn.rollback().await?,
                }
                Ok(value)
            }
            .await;
            match outcome {
                Err(e)
                    if $crate::meta::postgres::retryable(&e)
                        && attempt < $crate::meta::postgres::ATTEMPTS =>
                {
                    attempt += 1;
                    $crate::meta::postgres::backoff(attempt).await;
                }
                other => break other,
            }
        }
    }};
}

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

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres};

use super::{MetaError, Result, now_ms};

/// Advisory lock keys, in the two-int4 form so that they never meet
/// sqlx's migration lock (one bigint): Berth's class, then the lock.
/// (Advisory locks are per database: two registries on one server but
/// different databases do not meet either.)
const LOCK_CLASS: i32 = 0x4245_5254; // "BERT"
/// The gc leader's session lock.
const GC_LOCK: i32 = 2;
/// Taken by every write transaction (key `(LOCK_CLASS, 1)`), spelled out so
/// that beginning costs one round trip.
const SERIAL_FULL: &str = "SELECT pg_advisory_xact_lock(1111839316, 1)";
const SERIAL_PROCESS: &str =
    "SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock(1111839316, 1)";
const UNSERIAL_PROCESS: &str = "SET LOCAL synchronous_commit = off";

/// How many times a transaction runs at most (see [`transaction!`]).
pub(crate) const ATTEMPTS: u32 = 5;

pub struct PostgresMeta {
    pool: PgPool,
    /// For the connections outside the pool (the gc lock).
    options: PgConnectOptions,
    timeout: Duration,
}

/// How far a committed write has reached when `commit` returns (see the
/// SQLite store's `Durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Flushed to the WAL on disk (synchronous_commit = on).
    Full,
    /// Visible to all, flushed shortly after (synchronous_commit = off):
    /// upload sessions and blob claims.
    Process,
}

/// How a transaction ends when its body succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Commit,
    /// A plan or a dry run: computed, never kept.
    Rollback,
}

/// How a transaction runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mode {
    pub durability: Durability,
    /// Takes the writers' lock (everything but upload sessions).
    pub serial: bool,
    pub end: End,
}

impl Mode {
    /// What a client is told is stored, and every deletion.
    pub const WRITE: Mode = Mode {
        durability: Durability::Full,
        serial: true,
        end: End::Commit,
    };
    /// Claims and tombstone breaking: serialised, not flushed.
    pub const CLAIM: Mode = Mode {
        durability: Durability::Process,
        ..Mode::WRITE
    };
    /// Upload sessions: one session's rows (see the module's docs).
    pub const SESSION: Mode = Mode {
        durability: Durability::Process,
        serial: false,
        end: End::Commit,
    };
    /// Computes what a write would do, and rolls it back.
    pub const PLAN: Mode = Mode {
        durability: Durability::Process,
        serial: true,
        end: End::Rollback,
    };
}

/// Whether a failed transaction may succeed if run again at once.
pub(crate) fn retryable(e: &MetaError) -> bool {
    match e {
        MetaError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// A short, growing, jittered pause before attempt `attempt` (1-based).
pub(crate) async fn backoff(attempt: u32) {
    let mut byte = [0u8; 1];
    let jitter = getrandom::fill(&mut byte).map_or(0, |()| u64::from(byte[0]) % 10);
    let ms = (5u64 << attempt.min(6)) + jitter;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl PostgresMeta {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db?…`),
    /// migrates it (several processes may start at once: sqlx migrates under
    /// an advisory lock), and opens a pool of `pool_size` connections.
    /// `timeout` bounds connecting, waiting for a pooled connection, and
    /// every statement (`statement_timeout`, which includes waiting for the
    /// writers' lock). The URL may hold a password: it is never logged nor
    /// put in an error; errors name the host, port and database only.
    pub async fn connect(url: &str, pool_size: u32, timeout: Duration) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(|e| MetaError::Connect {
            target: "the configured URL (it does not parse)".into(),
            source: e,
        })?;
        let target = target(&options);
        let connect_error = |source| MetaError::Connect {
            target: target.clone(),
            source,
        };
        let ms = timeout.as_millis().max(1).to_string();
        let mut options = options.options([
            ("statement_timeout", ms.as_str()),
            // A transaction left open (a process stopped mid-way) must
            // not hold the writers' lock for long.
            ("idle_in_transaction_session_timeout", ms.as_str()),
            ("synchronous_commit", "on"),
        ]);
        if options.get_application_name().is_none() {
            options = options.application_name("berth");
        }

        // One connection first: its error says why (sqlx's pool retries a
        // refused connection until its timeout and then only says so).
        match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => return Err(connect_error(e)),
            Err(_) => return Err(connect_error(timed_out(timeout))),
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        // Each migration is bounded by statement_timeout.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            options,
            timeout,
        })
    }

    /// Begins a transaction as `mode` says (see the module's docs).
    pub(crate) async fn begin(&self, mode: Mode) -> Result<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        let setup = match (mode.serial, mode.durability) {
            (true, Durability::Full) => SERIAL_FULL,
            (true, Durability::Process) => SERIAL_PROCESS,
            (false, Durability::Process) => UNSERIAL_PROCESS,
            (false, Durability::Full) => "",
        };
        if !setup.is_empty() {
            sqlx::raw_sql(setup).execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// A connection of its own (not from the pool), within the timeout.
    async fn dedicated_connection(&self) -> Result<PgConnection> {
        match tokio::time::timeout(self.timeout, self.options.connect()).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(timed_out(self.timeout).into()),
        }
    }
}

/// Where the database is, without credentials: `host:port/database`.
fn target(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_string(),
    };
    format!(
        "{host}:{}/{}",
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

fn timed_out(timeout: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {timeout:?}"),
    ))
}

/// Inserts the repository if needed and returns its id (inside a
/// serialised write: no one else inserts it meanwhile).
pub(super) async fn ensure_repository(tx: &mut PgConnection, repo: &str) -> Result<i64> {
    if let Some(id) = repository_id(&mut *tx, repo).await? {
        return Ok(id);
    }
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
    E: sqlx::Executor<'e, Database = Postgres>,
{
    Ok(
        sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_optional(exec)
            .await?,
    )
}
