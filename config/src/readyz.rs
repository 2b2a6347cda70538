//! What `GET /readyz` of `berth serve` answers, which the operator reads to
//! say which dependency of a Registry is failing: 200 with [`READY`], or
//! 503 with [`SHUTTING_DOWN`], or the stores that do not answer
//! ([`METADATA_UNREACHABLE`], [`BLOBS_UNREACHABLE`]) joined by
//! [`SEPARATOR`].

/// 200: both stores answer.
pub const READY: &str = "ready";
/// 503 after SIGTERM, for `shutdown_delay_seconds`, while requests are
/// still served.
pub const SHUTTING_DOWN: &str = "shutting down";
/// 503: the metadata store (PostgreSQL or SQLite) does not answer.
pub const METADATA_UNREACHABLE: &str = "metadata store unreachable";
/// 503: the blob store (the S3 bucket or the directory) does not answer.
pub const BLOBS_UNREACHABLE: &str = "blob store unreachable";
/// Between the parts of a 503 body naming several stores.
pub const SEPARATOR: &str = "; ";
