//! Berth: an OCI distribution registry.
//!
//! Requests flow one way: [`api`] (HTTP) -> [`auth`] (who, and may they)
//! -> [`meta`] (metadata, SQL) and [`storage`] (blob bytes, `object_store`). See DESIGN.md for the map.

pub mod api;
pub mod auth;
pub mod config;
pub mod digest;
pub mod file_window;
pub mod full_disk;
pub mod http_server;
pub mod listener;
pub mod maintenance;
pub mod manifest;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod pattern;
pub mod publish;
pub mod server;
pub mod settings;
pub mod storage;
