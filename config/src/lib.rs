//! The contract between `berth` and `berth-operator`: the files one writes
//! and the other reads, as serde types, and the names of the environment
//! variables. The operator renders these types; the registry parses them
//! with the same types, so a field added on one side is a compile error on
//! the other until it is handled.
//!
//! - [`server`]: the `berth serve` config file (also its flags and
//!   `BERTH_*` variables);
//! - [`policy`]: the policy file (robots, groups, rules);
//! - [`repository`]: per-repository settings (quota, immutable tags,
//!   retention), in the policy file or the config file;
//! - [`mirror`]: upstream registries mirrored (pull-through cache);
//! - [`env`]: environment variable names;
//! - [`readyz`]: the bodies of `GET /readyz` (the operator reads them);
//! - [`ops`]: the operations endpoints beside `/metrics` (policy loaded,
//!   repository usage), which the operator reads.
//!
//! Only data and its validation live here: no I/O beyond reading a file,
//! no behaviour of either binary.

pub mod env;
pub mod mirror;
pub mod ops;
pub mod policy;
pub mod readyz;
pub mod repository;
pub mod server;

mod error;

pub use error::FileError;
pub use mirror::MirrorConfig;
pub use policy::{Action, PolicyFile, Robot, Rule};
pub use repository::{RepositorySettings, RetentionRules, parse_duration};
pub use server::{LogFormat, S3Config, ServerConfig, StorageBackend};
