//! The `berth` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_registry::config::{FileConfig, LogFormat, StorageBackend};
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
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
