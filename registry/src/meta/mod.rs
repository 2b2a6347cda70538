//! Metadata: repositories, manifests, tags, blob links, referrers, upload
//! sessions and maintenance records, behind one trait per aggregate (a
//! file each here) that [`MetaStore`] gathers. SQLite is embedded
//! ([`sqlite`]); another database implements the same traits without the
//! services above noticing. Every multi-row change is one transaction.

mod blobs;
mod change_signal;
mod gc;
mod manifest_cache;
mod manifests;
mod repositories;
mod retention;
pub mod sqlite;
mod stats;
mod tags;
mod uploads;

pub use blobs::{BlobMeta, Claim};
pub use gc::{DoomedBlob, GcMeta, GcPlan, MaintenanceRun, RepoSweep, SweepRules};
pub use manifests::{ManifestMeta, ManifestRecord, NewManifest, Reference, Referrer};
pub use repositories::RepositoryMeta;
pub use retention::RetentionMeta;
pub use sqlite::SqliteMeta;
pub use stats::{MaintenanceTotals, RepoUsage, StatsMeta, StoreStats};
pub use tags::{TagInfo, TagMeta};
pub use uploads::{NewPart, Upload, UploadMeta};

use crate::oci::manifest::SizeMismatch;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database")]
    Database(#[from] sqlx::Error),
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
