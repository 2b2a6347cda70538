//! Names of the environment variables `berth` reads, for the operator to
//! set them. The server config's own variables are on its fields
//! (`#[arg(env = …)]` in [`crate::server`]).

/// The config file of `berth serve` and the maintenance commands.
pub const CONFIG: &str = "BERTH_CONFIG";
/// The log filter (`tracing` syntax, e.g. `info,berth_registry=debug`).
pub const LOG: &str = "BERTH_LOG";
/// The PostgreSQL URL, when metadata is not in SQLite.
pub const DATABASE_URL: &str = "BERTH_DATABASE_URL";
/// S3 credentials, in the variables the AWS SDKs read.
pub const S3_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const S3_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
