//! `berth serve`: opens the stores, starts maintenance tasks and serves HTTP
//! until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::AccessControl;
use crate::config::{Config, LogFormat, StorageBackend};
use crate::maintenance::{self, gc::GcOptions};
use crate::meta::{MetaStore, SqliteMeta, now_ms};
use crate::storage::BlobStore;

/// Opens the metadata and blob stores the configuration names.
pub async fn open_stores(config: &Config) -> anyhow::Result<(Arc<dyn MetaStore>, BlobStore)> {
    Ok(match config.storage {
        StorageBackend::Filesystem => {
            std::fs::create_dir_all(&config.data_dir)?;
            let meta = SqliteMeta::open(&config.data_dir.join("metadata.db")).await?;
            (
                Arc::new(meta),
                BlobStore::local(&config.data_dir.join("storage"))?,
            )
        }
        StorageBackend::Memory => (Arc::new(SqliteMeta::memory().await?), BlobStore::memory()),
    })
}

/// Opens the stores and access control the configuration names.
pub async fn open_state(config: &Config) -> anyhow::Result<AppState> {
    let (meta, blobs) = open_stores(config).await?;
    let access = match &config.auth {
        Some(auth) => {
            let access = AccessControl::open(auth)?;
            access.watch_files();
            tracing::info!(policy = %auth.policy_file.display(), "access control on");
            Some(Arc::new(access))
        }
        None => {
            tracing::warn!("no policy file: access control is off, anyone may push and delete");
            None
        }
    };
    Ok(AppState {
        meta,
        blobs,
        access,
    })
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = open_state(&config).await?;
    tokio::spawn(expire_uploads(state.clone(), config.upload_expiry));
    if let Some(every) = config.gc.interval {
        let opts = GcOptions {
            grace: config.gc.grace,
            delete_untagged: !config.gc.keep_untagged,
            dry_run: false,
        };
        tracing::info!(every_seconds = every.as_secs(), "gc runs inside the server");
        tokio::spawn(maintenance::gc_every(
            state.meta.clone(),
            state.blobs.clone(),
            every,
            opts,
        ));
    }
    let listener = bind(config.listen, "the API").await?;
    crate::metrics::init();
    let metrics = bind(config.metrics_listen, "metrics").await?;
    let api_addr = listener.local_addr()?;
    let metrics_addr = metrics.local_addr()?;
    tracing::info!(listen = %metrics_addr, "metrics on /metrics");
    let metrics_app = crate::metrics::router(state.meta.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics, metrics_app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    tracing::info!(
        listen = %api_addr,
        data_dir = %config.data_dir.display(),
        storage = ?config.storage,
        "berth is serving the OCI distribution API"
    );
    if config.log_format == LogFormat::Text {
        eprintln!("{}", banner(&config, api_addr, metrics_addr));
    }
    crate::http_server::serve(
        listener,
        api::router(state),
        config.limits.clone(),
        shutdown_signal(),
    )
    .await;
    Ok(())
}

/// Binds `addr`, saying which listener could not when it fails.
async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {addr}: {e}"))
}

/// What a person starting `berth serve` by hand wants to know first: where
/// it listens, where the data goes, and how to push to it.
fn banner(config: &Config, api: std::net::SocketAddr, metrics: std::net::SocketAddr) -> String {
    let storage = match config.storage {
        StorageBackend::Filesystem => format!("data in {}", config.data_dir.display()),
        StorageBackend::Memory => "data in memory (lost on exit)".to_string(),
    };
    let access = match &config.auth {
        Some(auth) => format!("access control from {}", auth.policy_file.display()),
        None => "access control off (anyone may push)".to_string(),
    };
    let host = if api.ip().is_unspecified() {
        format!("localhost:{}", api.port())
    } else {
        api.to_string()
    };
    format!(
        "berth: serving http://{api} (metrics: http://{metrics}/metrics); {storage}; {access}\n\
         berth: push over plain HTTP with `skopeo copy --dest-tls-verify=false oci-archive:IMAGE.tar docker://{host}/NAME:TAG` \
         or `oras push --plain-http {host}/NAME:TAG FILE`"
    )
}

/// Removes upload sessions (and their data) idle for longer than `expiry`,
/// and upload data a crash left without a session.
async fn expire_uploads(state: AppState, expiry: Duration) {
    let period = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if let Err(e) = expire_once(&state, expiry).await {
            tracing::warn!(error = %e, "expiring idle uploads failed");
        }
    }
}

async fn expire_once(state: &AppState, expiry: Duration) -> anyhow::Result<()> {
    let before = now_ms() - expiry.as_millis() as i64;
    for id in state.meta.stale_uploads(before).await? {
        state.meta.delete_upload(&id).await?;
        state.blobs.delete_upload(&id).await?;
        tracing::info!(upload = %id, "expired idle upload");
    }
    let cutoff = std::time::SystemTime::now() - expiry;
    maintenance::sweep_leftovers(state.meta.as_ref(), &state.blobs, cutoff, false).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
