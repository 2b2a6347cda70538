//! The `berth` command line: one file per command. `serve` takes the
//! shared server configuration (`berth_config::ServerConfig`) flattened as
//! its flags; the maintenance commands open the stores of a registry that
//! keeps serving, through its config file or data directory.

mod check_config;
mod gc;
mod ls;
mod new_robot;
mod node_proxy;
mod registry_client;
mod retention;
mod serve;
mod sif;
mod usage;

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use berth_config::ServerConfig;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::meta::MetaStore;
use crate::storage::BlobStore;

#[derive(Parser)]
#[command(name = "berth", version, about = "Berth: an OCI distribution registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OCI distribution API.
    ///
    /// Settings come from the config file, then BERTH_* environment
    /// variables, then flags; later ones win.
    Serve(Box<serve::Args>),
    /// Check a config file and everything it names (policy, htpasswd, token
    /// key) as `serve` would, and print the effective configuration.
    CheckConfig(check_config::Args),
    /// Collect garbage: delete manifests no tag reaches, then blobs no
    /// manifest references, and what a crash left. Safe while the registry
    /// serves pushes: anything younger than the grace period is kept.
    Gc(gc::Args),
    /// Apply retention rules: delete old tags (and untagged manifests).
    /// Rules from the flags, or else from the per-repository settings.
    Retention(retention::Args),
    /// Show the storage each repository uses, each quota's usage, and the
    /// blobs stored.
    Usage(usage::Args),
    /// List what a running registry holds: its repositories, or one
    /// repository's tags with digests, sizes and platforms.
    Ls(ls::Args),
    /// Describe the SIF images a tag of a running Berth holds: what their
    /// headers say (architecture, creation time, signing keys, data
    /// objects as `siftool list` shows them).
    Sif(sif::Args),
    /// Make a robot account: print a new random secret and the policy-file
    /// entry that holds its hash (only the hash goes in the policy).
    NewRobot(new_robot::Args),
    /// Forward a node's localhost port to a registry (plain TCP): what the
    /// operator runs on every node so that kubelets pull from
    /// `localhost:<port>` with no node configuration.
    NodeProxy(node_proxy::Args),
}

/// Runs the command line; the process's exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Retention(args) => retention::run(args),
        Command::Usage(args) => usage::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Sif(args) => sif::run(args),
        Command::NewRobot(args) => new_robot::run(args),
        Command::NodeProxy(args) => node_proxy::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, with its causes: "berth: cannot listen for the API on
            // 127.0.0.1:5000: Address already in use (os error 98)".
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a maintenance command finds the registry's data and settings: the
/// same file, flags and variables as `serve` (only the stores and the
/// per-repository settings matter here).
#[derive(clap::Args)]
struct StoreArgs {
    /// The registry's YAML config file (data_dir, storage, database_url, s3,
    /// policy_file, gc_*, repositories).
    #[arg(long, env = berth_config::env::CONFIG)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: ServerConfig,
}

impl StoreArgs {
    fn config(&self) -> anyhow::Result<Config> {
        load_config(self.config.as_deref(), self.settings.clone())
    }
}

/// `over` (flags and environment) laid over the config file, if any.
fn load_config(file: Option<&std::path::Path>, over: ServerConfig) -> anyhow::Result<Config> {
    let file = match file {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    Ok(Config::new(over.over(file)))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(berth_config::env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: not in files or pod logs.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(future))
}

/// Runs a maintenance command on the stores of an existing registry, with
/// its per-repository settings; closes the stores after.
fn maintenance<F, Fut>(args: &StoreArgs, command: F) -> anyhow::Result<()>
where
    F: FnOnce(
        Config,
        Arc<dyn MetaStore>,
        Arc<dyn BlobStore>,
        Vec<berth_config::RepositorySettings>,
    ) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = args.config()?;
    init_logging(config.log_format);
    let settings = crate::server::settings(&config)?.all();
    block_on(async {
        let (meta, blobs) = crate::server::open_existing_stores(&config).await?;
        let result = command(config, meta.clone(), blobs, settings).await;
        meta.close().await;
        result
    })?
}

/// Writes to stdout; a reader that went away (`| head`) ends the output
/// quietly rather than in a panic.
fn print(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
