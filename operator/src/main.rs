//! `berth-operator`: runs Berth registries from `Registry` and `Repository`
//! objects.
//!
//!     berth-operator run                 reconcile (KUBECONFIG or in-cluster)
//!     berth-operator crdgen [--out DIR]… write the CRD YAML files (default:
//!                                        crds/ and the Helm chart's charts/berth/crds/)

use std::process::ExitCode;

use berth_operator::cli::{Cli, main as run};
use clap::Parser;

fn main() -> ExitCode {
    run(Cli::parse())
}
