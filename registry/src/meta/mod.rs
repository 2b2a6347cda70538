//! Metadata: repositories, manifests, tags, blob links, referrers, upload
//! sessions and maintenance records, behind one trait per aggregate (a
//! file each here) that [`MetaStore`] gathers. SQLite is embedded
//! ([`sqlite`]); another database implements the same traits without the
//! services above noticing. Every multi-row change is one transaction.
//! PostgreSQL ([`postgres`]) implements them for several processes (and
//! hosts) sharing one database. Both pass one test suite (`suite`).

mod blobs;
mod browse;
mod change_signal;
mod gc;
mod logins;
mod manifest_cache;
mod manifests;
mod mirror;
pub mod postgres;
mod repositories;
mod retention;
mod sif;
pub mod sqlite;
mod stats;
#[cfg(test)]
mod suite;
mod tags;
mod uploads;

pub use blobs::{BlobMeta, Claim};
pub(crate) use browse::run_kind;
pub use browse::{BrowseMeta, ManifestFacts, RepositorySummary, TagPage, TagRow};
pub use gc::{DoomedBlob, GcLock, GcMeta, GcPlan, MaintenanceRun, RepoSweep, SweepRules};
pub use logins::{LoginFailures, LoginMeta};
pub use manifests::{ManifestMeta, ManifestRecord, NewManifest, Reference, Referrer};
pub use mirror::{MirrorMeta, Pulled};
pub use postgres::PostgresMeta;
pub use repositories::RepositoryMeta;
pub use retention::RetentionMeta;
pub use sif::{SifMeta, SifRecord};
pub use sqlite::SqliteMeta;
pub use stats::{MaintenanceTotals, RepoUsage, StatsMeta, StoreStats};
pub use tags::{TagInfo, TagMeta};
pub use uploads::{NewPart, Upload, UploadMeta};

use crate::oci::manifest::SizeMismatch;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database")]
    Database(#[from] sqlx::Error),
    /// The database could not be reached when the store was opened. `target`
    /// is where it was looked for, without credentials.
    #[error("cannot connect to the metadata database at {target}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("metadata change signal")]
    ChangeSignal(#[from] std::io::Error),
    #[error("metadata migration")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob {0} is not in the repository")]
    BlobUnknown(String),
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(String),
    #[error(
        "quota exceeded: repositories matching `{pattern}` may hold {limit} bytes; \
         they hold {usage} and this would add {adding}"
    )]
    QuotaExceeded {
        pattern: String,
        limit: u64,
        usage: u64,
        adding: u64,
    },
    #[error(transparent)]
    SizeMismatch(#[from] SizeMismatch),
    #[error("blob {0} was collected while it was being published; retry the upload")]
    ClaimLost(String),
    #[error("tag `{tag}` is immutable (matches `{pattern}`): it cannot be moved or deleted")]
    TagImmutable { tag: String, pattern: String },
}

impl MetaError {
    /// Whether the database could not be reached (refused or reset
    /// connections, I/O and TLS failures, a pool that timed out or is
    /// closed, a server shutting down, a statement that ran out of time):
    /// the request may succeed later, so the HTTP layer answers 503 and
    /// readiness fails. False for errors of the SQL or of the data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) | Self::Connect { source: e, .. } => sqlx_unavailable(e),
            Self::Migrate(
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
            ) => sqlx_unavailable(e),
            _ => false,
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL's SQLSTATEs: class 08 (connection exception),
            // 53300 too many connections, 57P01-57P03 the server is shutting
            // down or starting, 57014 a statement (or the wait for a lock)
            // ran past statement_timeout.
            code.starts_with("08")
                || matches!(&*code, "53300" | "57P01" | "57P02" | "57P03" | "57014")
        }),
        _ => false,
    }
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Everything the registry keeps in its metadata database.
pub trait MetaStore:
    RepositoryMeta
    + BlobMeta
    + ManifestMeta
    + TagMeta
    + UploadMeta
    + RetentionMeta
    + GcMeta
    + StatsMeta
    + LoginMeta
    + MirrorMeta
    + SifMeta
    + BrowseMeta
    + 'static
{
}

impl<T> MetaStore for T where
    T: RepositoryMeta
        + BlobMeta
        + ManifestMeta
        + TagMeta
        + UploadMeta
        + RetentionMeta
        + GcMeta
        + StatsMeta
        + LoginMeta
        + MirrorMeta
        + SifMeta
        + BrowseMeta
        + 'static
{
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
