//! The OCI formats Berth reads: digests, repository names and tags, and
//! manifests. Pure parsing, no I/O.

pub mod describe;
pub mod digest;
pub mod manifest;
pub mod names;
