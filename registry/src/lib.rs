//! Berth: an OCI distribution registry.
//!
//! A request flows one way: [`http`] (routes, access control at the edge,
//! one handler file per area of the spec) -> [`service`] (the rules of
//! pushes, pulls and deletes) -> [`meta`] (metadata: SQL) and [`storage`]
//! (blob bytes). [`auth`] says who is asking and what they may do;
//! [`settings`] what applies to a repository; [`maintenance`] is gc and
//! retention; [`ui`] is the web UI and its JSON API; [`cli`] is the `berth` command line, and [`server`] puts a
//! serving process together.

pub mod auth;
pub mod cli;
pub mod config;
pub mod full_disk;
pub mod http;
pub mod maintenance;
pub mod meta;
pub mod metrics;
pub mod mirror;
pub mod node_proxy;
pub mod oci;
pub mod pattern;
pub mod remote;
pub mod report;
pub mod rfc3339;
pub mod server;
pub mod service;
pub mod settings;
pub mod sif;
pub mod storage;
pub mod ui;
pub mod watch;
