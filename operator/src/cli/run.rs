//! `berth-operator run`: the metrics endpoint, leader election, then both
//! controllers until SIGTERM (releasing the Lease) or until the Lease is
//! lost (exiting, so that another replica leads).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::info;

use crate::controller::leader::LeaderElector;
use crate::controller::metrics::Metrics;
use crate::controller::{self, Context, registry_controller, repository_controller};
use crate::server;

/// Pause between attempts to take the Lease while another replica holds it.
const ACQUIRE_RETRY: Duration = Duration::from_secs(2);

#[derive(clap::Args)]
pub struct RunArgs {
    /// Address of the /metrics and /healthz endpoint.
    #[arg(
        long,
        env = "BERTH_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: String,
    /// Elect a leader among operator replicas with a Lease.
    #[arg(long, env = "BERTH_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "berth-system")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "berth-operator")]
    pub lease_name: String,
    /// Seconds a leader may go without renewing before another takes over.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// Identity in the Lease; POD_NAME, else host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "BERTH_OPERATOR_LOG_JSON")]
    pub log_json: bool,
    /// The image of a Registry whose spec names none (the chart passes its
    /// own image); the Berth image of the operator's version by default.
    #[arg(long, env = "BERTH_OPERATOR_REGISTRY_IMAGE", default_value_t = crate::render::default_image())]
    pub registry_image: String,
    /// Seconds between two readings of a Repository's usage (tag count,
    /// bytes) from its registry.
    #[arg(long, env = "BERTH_OPERATOR_USAGE_REFRESH_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub usage_refresh_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to Kubernetes (KUBECONFIG or in-cluster config): {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Leader(#[source] controller::Error),
    #[error("lost the leader Lease (not renewed for {0:?}); exiting so that another replica leads")]
    LostLease(Duration),
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
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
    tokio::spawn(server::serve(listener, metrics.clone()));

    let elector = if args.leader_elect {
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        let elector = LeaderElector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            Duration::from_secs(args.lease_seconds),
        );
        info!(identity, lease = %args.lease_name, namespace = %args.lease_namespace, "waiting to become leader");
        tokio::select! {
            _ = elector.acquire(ACQUIRE_RETRY) => {}
            _ = shutdown_signal() => return Ok(()),
        }
        Some(elector)
    } else {
        None
    };

    let settings = controller::Settings {
        registry_image: args.registry_image.clone(),
        usage_refresh: Duration::from_secs(args.usage_refresh_seconds),
    };
    info!(registry_image = %settings.registry_image, "default registry image");
    let ctx = Context::new(client, metrics, settings);
    let controllers = async {
        futures::join!(
            registry_controller(ctx.clone()).for_each(|_| async {}),
            repository_controller(ctx.clone()).for_each(|_| async {}),
        );
    };
    info!("controllers running");
    let Some(elector) = elector else {
        controllers.await;
        return Ok(());
    };
    tokio::select! {
        _ = controllers => {
            info!("shutting down; releasing the leader Lease");
            elector.release().await.map_err(RunError::Leader)
        }
        unrenewed = elector.hold() => Err(RunError::LostLease(unrenewed)),
    }
}

/// The host name and process id (POD_NAME is the usual identity).
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "berth-operator".into());
    format!("{host}-{}", std::process::id())
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
