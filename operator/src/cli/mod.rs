//! The command line: `berth-operator run` and `berth-operator crdgen`.
//! main.rs parses [`Cli`] and calls [`main`].

mod crdgen;
mod run;

pub use run::{RunArgs, RunError};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;

#[derive(Parser)]
#[command(
    name = "berth-operator",
    version,
    about = "Runs Berth registries on Kubernetes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Reconcile Registries and Repositories in every namespace.
    Run(RunArgs),
    /// Write the CustomResourceDefinitions as YAML files.
    Crdgen {
        /// Directory to write registries.yaml and repositories.yaml into;
        /// repeat for several. Defaults to both copies in the repository:
        /// crds/ and the Helm chart's charts/berth/crds/.
        #[arg(long, default_values = ["crds", "charts/berth/crds"])]
        out: Vec<PathBuf>,
    },
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crdgen { out } => match crdgen::write(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth-operator crdgen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            init_tracing(args.log_json);
            // Fails only if a provider is already installed, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("berth-operator: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    // Colours only on a terminal: not in `kubectl logs` or files.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_and_their_defaults() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["berth-operator", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert_eq!(args.metrics_addr, "0.0.0.0:8080");
        assert!(args.leader_elect);
        assert_eq!(args.lease_name, "berth-operator");
        assert_eq!(args.lease_seconds, 15);
        assert_eq!(args.registry_image, crate::render::default_image());
        assert_eq!(args.usage_refresh_seconds, 60);
        let cli = Cli::try_parse_from(["berth-operator", "crdgen"]).unwrap();
        let Command::Crdgen { out } = cli.command else {
            panic!("not crdgen");
        };
        assert_eq!(
            out,
            [PathBuf::from("crds"), PathBuf::from("charts/berth/crds")]
        );
        let cli =
            Cli::try_parse_from(["berth-operator", "run", "--leader-elect", "false"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Run(RunArgs {
                leader_elect: false,
                ..
            })
        ));
    }
}
