//! The `berth` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use berth_registry::auth::Policy;
use berth_registry::config::{Config, FileConfig, LogFormat, StorageBackend};
use berth_registry::maintenance;
use berth_registry::maintenance::gc::{self, GcOptions};
use berth_registry::maintenance::retention::{self, RetentionOptions};
use berth_registry::meta::MetaStore;
use berth_registry::settings::{RepositorySettings, RetentionRules};
use berth_registry::storage::BlobStore;
use clap::{Parser, Subcommand};

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
    Serve(Box<ServeArgs>),
    /// Make a robot account: print a new random secret and the policy-file
    /// entry that holds its hash (only the hash goes in the policy).
    NewRobot {
        /// The robot's name, e.g. robot$team-a+ci.
        name: String,
    },
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Collect garbage: delete manifests no tag reaches, then blobs no
    /// manifest references. Safe while the registry serves pushes: anything
    /// younger than the grace period is kept.
    Gc(GcArgs),
    /// Apply retention rules: delete old tags (and untagged manifests).
    /// Rules from the flags, or else from the policy file's `repositories:`.
    Retention(RetentionArgs),
    /// Show the storage each repository uses, and each quota's usage.
    Usage {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Where a maintenance command finds the registry's data.
#[derive(clap::Args)]
struct StoreArgs {
    /// The registry's YAML config file (data_dir, storage, policy_file, gc_*).
    #[arg(long, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for blobs and metadata [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Policy file with per-repository settings (quotas, retention, immutable tags).
    #[arg(long, env = "BERTH_POLICY_FILE")]
    policy_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct GcArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep manifests no tag reaches.
    #[arg(long)]
    keep_untagged: bool,
    /// Keep anything younger than this many seconds [default: 3600].
    #[arg(long, env = "BERTH_GC_GRACE_SECONDS")]
    grace_seconds: Option<u64>,
}

#[derive(clap::Args)]
struct RetentionArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Repository name or pattern (`team/*`); repeatable [default: every
    /// repository with rules in the policy file].
    #[arg(long = "repository")]
    repositories: Vec<String>,
    /// Keep the N most recently pushed tags.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Delete tags pushed longer ago than this (30d, 720h, 2w).
    #[arg(long, value_parser = parse_age)]
    max_age: Option<String>,
    /// Only tags matching these patterns are candidates (repeatable).
    #[arg(long)]
    only_tags: Vec<String>,
    /// Tags matching these patterns are never deleted (repeatable).
    #[arg(long)]
    protect_tags: Vec<String>,
    /// Also delete manifests no tag reaches (older than the grace period).
    #[arg(long)]
    delete_untagged: bool,
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Untagged manifests younger than this many seconds are kept [default: 3600].
    #[arg(long, env = "BERTH_GC_GRACE_SECONDS")]
    grace_seconds: Option<u64>,
}

fn parse_age(text: &str) -> Result<String, String> {
    berth_registry::settings::parse_duration(text).map(|_| text.to_string())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML config file: any of the options below, in snake_case (listen, data_dir, …).
    #[arg(long, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "BERTH_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address for Prometheus metrics (/metrics) [default: 127.0.0.1:5001].
    #[arg(long, env = "BERTH_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Directory for blobs and metadata [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where blobs and metadata live [default: filesystem].
    #[arg(long, env = "BERTH_STORAGE", value_enum)]
    storage: Option<StorageBackend>,
    /// Log line format [default: text].
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Idle upload sessions are removed after this many seconds [default: 86400].
    #[arg(long, env = "BERTH_UPLOAD_EXPIRY_SECONDS")]
    upload_expiry_seconds: Option<u64>,
    /// Policy file (users' groups, robots, rules); turns access control on.
    /// Re-read when it changes.
    #[arg(long, env = "BERTH_POLICY_FILE")]
    policy_file: Option<PathBuf>,
    /// htpasswd file of users (bcrypt entries, `htpasswd -B`).
    #[arg(long, env = "BERTH_HTPASSWD_FILE")]
    htpasswd_file: Option<PathBuf>,
    /// Token signing key, P-256 PEM; generated if missing [default: <data-dir>/token-key.pem].
    #[arg(long, env = "BERTH_TOKEN_KEY_FILE")]
    token_key_file: Option<PathBuf>,
    /// Issuer of tokens [default: berth].
    #[arg(long, env = "BERTH_TOKEN_ISSUER")]
    token_issuer: Option<String>,
    /// Service (token audience) [default: berth].
    #[arg(long, env = "BERTH_TOKEN_SERVICE")]
    token_service: Option<String>,
    /// Token lifetime in seconds [default: 300].
    #[arg(long, env = "BERTH_TOKEN_EXPIRY_SECONDS")]
    token_expiry_seconds: Option<u64>,
    /// URL clients reach the registry at, for the token realm [default: from the Host header].
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    public_url: Option<String>,
    /// Run gc inside the server every this many seconds [default: never].
    #[arg(long, env = "BERTH_GC_INTERVAL_SECONDS")]
    gc_interval_seconds: Option<u64>,
    /// gc keeps anything younger than this many seconds [default: 3600].
    #[arg(long, env = "BERTH_GC_GRACE_SECONDS")]
    gc_grace_seconds: Option<u64>,
    /// gc keeps manifests no tag reaches.
    #[arg(long, env = "BERTH_GC_KEEP_UNTAGGED")]
    gc_keep_untagged: Option<bool>,
    /// Seconds a request head may take to arrive (also closes idle
    /// keep-alive connections) [default: 30].
    #[arg(long, env = "BERTH_HEADER_TIMEOUT_SECONDS")]
    header_timeout_seconds: Option<u64>,
    /// Seconds a request body may send nothing before the request ends [default: 60].
    #[arg(long, env = "BERTH_BODY_TIMEOUT_SECONDS")]
    body_timeout_seconds: Option<u64>,
    /// Seconds a client may read nothing of a response before it is
    /// disconnected [default: 60].
    #[arg(long, env = "BERTH_SEND_TIMEOUT_SECONDS")]
    send_timeout_seconds: Option<u64>,
    /// Connections served at once [default: 4096].
    #[arg(long, env = "BERTH_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections from one address at once, 0 for no limit [default: 256].
    #[arg(long, env = "BERTH_MAX_CONNECTIONS_PER_CLIENT")]
    max_connections_per_client: Option<usize>,
    /// Seconds open requests may take to finish after SIGTERM [default: 30].
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT_SECONDS")]
    shutdown_timeout_seconds: Option<u64>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::NewRobot { name } => {
            let mut bytes = [0u8; 32];
            if let Err(e) = getrandom::fill(&mut bytes) {
                eprintln!("no randomness: {e}");
                return ExitCode::FAILURE;
            }
            let secret = hex::encode(bytes);
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
            println!("# secret (give it to the client; it is not stored anywhere):\n#   {secret}");
            println!(
                "# add to the policy file under robots:\n- name: {name}\n  password_sha256: {hash}"
            );
            ExitCode::SUCCESS
        }
        Command::CheckConfig { file } => match FileConfig::load(&file) {
            Ok(c) => {
                println!(
                    "{file}: ok\n{:#?}",
                    c.resolve(FileConfig::default()),
                    file = file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Gc(args) => maintenance(&args.store, |config, meta, blobs, _| async move {
            let opts = GcOptions {
                grace: args
                    .grace_seconds
                    .map(Duration::from_secs)
                    .unwrap_or(config.gc.grace),
                delete_untagged: !(args.keep_untagged || config.gc.keep_untagged),
                dry_run: args.dry_run,
            };
            let report = gc::run(meta.as_ref(), &blobs, &opts).await?;
            let verb = if report.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            println!(
                "gc {verb}: {} untagged manifests, {} blob links, {} empty repositories, {} blobs ({} bytes), \
                 {} staging files ({} bytes), {} abandoned uploads; {} repositories in {:.3} s",
                report.manifests.len(),
                report.links,
                report.repositories_removed.len(),
                report.blobs,
                report.bytes,
                report.leftovers.staging_files,
                report.leftovers.staging_bytes,
                report.leftovers.uploads,
                report.repositories_checked,
                report.duration.as_secs_f64()
            );
            Ok(())
        }),
        Command::Retention(args) => {
            maintenance(&args.store, |config, meta, _, settings| async move {
                let given = RetentionRules {
                    keep_last: args.keep_last,
                    max_age: args.max_age,
                    only_tags: args.only_tags,
                    protect_tags: args.protect_tags,
                    delete_untagged: args.delete_untagged,
                };
                let rules = (!given.is_empty()).then_some(given);
                let repositories = if args.repositories.is_empty() {
                    settings
                        .iter()
                        .filter(|s| s.retention.is_some())
                        .map(|s| s.name.clone())
                        .collect()
                } else {
                    args.repositories
                };
                if repositories.is_empty() {
                    anyhow::bail!(
                        "no repository to apply retention to: name one with --repository, or give rules in the policy file"
                    );
                }
                let opts = RetentionOptions {
                    repositories,
                    rules,
                    settings,
                    grace: args
                        .grace_seconds
                        .map(Duration::from_secs)
                        .unwrap_or(config.gc.grace),
                    dry_run: args.dry_run,
                };
                let report = retention::run(meta.as_ref(), &opts).await?;
                for t in &report.tags {
                    println!("{}:{} {}", t.repository, t.tag, t.digest);
                }
                let verb = if report.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                println!(
                    "retention {verb}: {} tags, {} untagged manifests in {} repositories ({:.3} s)",
                    report.tags.len(),
                    report.manifests.len(),
                    report.repositories,
                    report.duration.as_secs_f64()
                );
                Ok(())
            })
        }
        Command::Usage { store, json } => maintenance(&store, |_, meta, _, settings| async move {
            let usage = maintenance::usage(meta.as_ref(), &settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&usage)?);
                return Ok(());
            }
            println!(
                "{:<40} {:>15} {:>7} {:>9} {:>7}",
                "REPOSITORY", "BYTES", "BLOBS", "MANIFESTS", "TAGS"
            );
            for r in &usage.repositories {
                println!(
                    "{:<40} {:>15} {:>7} {:>9} {:>7}",
                    r.name, r.bytes, r.blobs, r.manifests, r.tags
                );
            }
            for q in &usage.quotas {
                println!(
                    "quota {}: {} of {} bytes",
                    q.pattern, q.used_bytes, q.limit_bytes
                );
            }
            Ok(())
        }),
        Command::Serve(args) => {
            let file = match args.config.as_deref().map(FileConfig::load).transpose() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let config = file.resolve(FileConfig {
                listen: args.listen,
                metrics_listen: args.metrics_listen,
                data_dir: args.data_dir,
                storage: args.storage,
                log_format: args.log_format,
                upload_expiry_seconds: args.upload_expiry_seconds,
                policy_file: args.policy_file,
                htpasswd_file: args.htpasswd_file,
                token_key_file: args.token_key_file,
                token_issuer: args.token_issuer,
                token_service: args.token_service,
                token_expiry_seconds: args.token_expiry_seconds,
                public_url: args.public_url,
                gc_interval_seconds: args.gc_interval_seconds,
                gc_grace_seconds: args.gc_grace_seconds,
                gc_keep_untagged: args.gc_keep_untagged,
                header_timeout_seconds: args.header_timeout_seconds,
                body_timeout_seconds: args.body_timeout_seconds,
                send_timeout_seconds: args.send_timeout_seconds,
                max_connections: args.max_connections,
                max_connections_per_client: args.max_connections_per_client,
                shutdown_timeout_seconds: args.shutdown_timeout_seconds,
            });
            init_logging(config.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(berth_registry::server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "berth stopped");
                    eprintln!("berth: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs a maintenance command against the registry's stores: resolves the
/// config like `serve` does, opens the stores and the policy file's
/// per-repository settings, logs as text to stderr.
fn maintenance<F, Fut>(args: &StoreArgs, command: F) -> ExitCode
where
    F: FnOnce(Config, Arc<dyn MetaStore>, BlobStore, Vec<RepositorySettings>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let file = match args.config.as_deref().map(FileConfig::load).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = file.resolve(FileConfig {
        data_dir: args.data_dir.clone(),
        policy_file: args.policy_file.clone(),
        ..Default::default()
    });
    init_logging(config.log_format);
    if config.storage == StorageBackend::Memory {
        eprintln!(
            "berth: maintenance needs a persistent store (storage: memory is private to its server)"
        );
        return ExitCode::FAILURE;
    }
    let settings = match &config.auth {
        Some(auth) => match Policy::load(&auth.policy_file) {
            Ok(p) => p.repositories,
            Err(e) => {
                eprintln!("berth: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Vec::new(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (meta, blobs) = berth_registry::server::open_stores(&config).await?;
        command(config, meta, blobs, settings).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
