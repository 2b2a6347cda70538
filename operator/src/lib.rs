//! Berth's Kubernetes operator: `Registry` and `Repository` custom
//! resources ([`crd`]), pure functions from specs to objects, conditions
//! and decisions ([`render`]), reconcilers that fetch, render, apply and
//! write status ([`controller`]), its metrics and health endpoint
//! ([`server`]) and the command line ([`cli`]).

pub mod cli;
pub mod controller;
pub mod crd;
pub mod render;
pub mod server;
