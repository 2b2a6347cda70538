//! `berth-operator`: runs Berth registries from `Registry` and `Repository`
//! objects.
//!
//!     berth-operator run                 reconcile (KUBECONFIG or in-cluster)
//!     berth-operator crdgen [--out DIR]… write the CRD YAML files (default:
//!                                        crds/ and the Helm chart's charts/berth/crds/)

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_operator::controller::leader::LeaderElector;
use berth_operator::controller::metrics::Metrics;
use berth_operator::controller::{Context, registry_controller, repository_controller};
use berth_operator::crd::crd_files;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "berth-operator",
    version,
    about = "Runs Berth registries on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[derive(clap::Args)]
struct RunArgs {
    /// Address of the /metrics and /healthz endpoint.
    #[arg(
        long,
        env = "BERTH_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: String,
    /// Elect a leader among operator replicas with a Lease.
    #[arg(long, env = "BERTH_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "berth-system")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "berth-operator")]
    lease_name: String,
    /// Seconds a leader may go without renewing before another takes over.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Identity in the Lease; POD_NAME, else host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "BERTH_OPERATOR_LOG_JSON")]
    log_json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out } => crdgen(&out),
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
            match rt.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn crdgen(dirs: &[PathBuf]) -> ExitCode {
    let files = match crd_files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("berth-operator crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for out in dirs {
        if let Err(code) = write_crds(out, &files) {
            return code;
        }
    }
    ExitCode::SUCCESS
}

fn write_crds(out: &std::path::Path, files: &[(&str, String)]) -> Result<(), ExitCode> {
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!(
            "berth-operator crdgen: cannot create {}: {e}",
            out.display()
        );
        return Err(ExitCode::FAILURE);
    }
    for (name, yaml) in files {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, yaml) {
            eprintln!(
                "berth-operator crdgen: cannot write {}: {e}",
                path.display()
            );
            return Err(ExitCode::FAILURE);
        }
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot connect to Kubernetes (KUBECONFIG or in-cluster config): {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Leader(#[source] berth_operator::controller::Error),
    #[error("lost the leader Lease (not renewed for {0:?}); exiting so that another replica leads")]
    LostLease(Duration),
}

async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::Client)?;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.metrics_addr.clone(),
            source,
        })?;
    tokio::spawn(serve_metrics(listener, metrics.clone()));

    let elector = if args.leader_elect {
        let identity = args.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "berth-operator".into());
            format!("{host}-{}", std::process::id())
        });
        let elector = Arc::new(LeaderElector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            Duration::from_secs(args.lease_seconds),
        ));
        info!(identity, lease = %args.lease_name, namespace = %args.lease_namespace, "waiting to become leader");
        loop {
            match elector.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown_signal() => return Ok(()),
            }
        }
        Some(elector)
    } else {
        None
    };

    let ctx = Context::new(client, metrics);
    let controllers = async {
        futures::join!(
            registry_controller(ctx.clone()).for_each(|_| async {}),
            repository_controller(ctx.clone()).for_each(|_| async {}),
        );
    };
    info!("controllers running");
    match &elector {
        None => controllers.await,
        Some(elector) => {
            let lease = Duration::from_secs(args.lease_seconds);
            let renew = async {
                let mut last_ok = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match elector.try_acquire_or_renew().await {
                        Ok(true) => last_ok = tokio::time::Instant::now(),
                        Ok(false) => return RunError::LostLease(last_ok.elapsed()),
                        Err(e) => warn!(error = %e, "cannot renew the leader Lease"),
                    }
                    if last_ok.elapsed() >= lease {
                        return RunError::LostLease(last_ok.elapsed());
                    }
                }
            };
            tokio::select! {
                _ = controllers => {
                    info!("shutting down; releasing the leader Lease");
                    elector.release().await.map_err(RunError::Leader)?;
                }
                e = renew => return Err(e),
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A minimal HTTP/1.1 endpoint: GET /metrics and /healthz.
async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/healthz" | "/readyz" => ("200 OK", "text/plain", "ok\n".to_string()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}
