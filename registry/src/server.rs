//! A serving `berth` put together: the stores the configuration names, the
//! services over them, access control, the background tasks (upload
//! expiry, in-server gc), the metrics listener and the API's accept loop,
//! until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::{AccessControl, Htpasswd, Policy, TokenService};
use crate::config::{Config, LogFormat, StorageBackend};
use crate::http::{self, AppState};
use crate::maintenance::{self, gc::GcOptions};
use crate::meta::{MetaStore, SqliteMeta};
use crate::service::Registry;
use crate::settings::SettingsSource;
use crate::storage::{BlobStore, LocalStore, ObjectBlobs};
use crate::watch::Watched;

/// The metadata database file under the data directory.
pub const METADATA_DB: &str = "metadata.db";
/// The blob store's directory under the data directory.
pub const STORAGE_DIR: &str = "storage";

/// The stores of the configuration, created if they are not there yet.
pub async fn open_stores(
    config: &Config,
) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn BlobStore>)> {
    Ok(match config.storage {
        StorageBackend::Filesystem => {
            std::fs::create_dir_all(&config.data_dir)?;
            let meta = SqliteMeta::open(&config.data_dir.join(METADATA_DB)).await?;
            let blobs = LocalStore::open(&config.data_dir.join(STORAGE_DIR))?;
            (Arc::new(meta), Arc::new(blobs))
        }
        StorageBackend::Memory => (
            Arc::new(SqliteMeta::memory().await?),
            Arc::new(ObjectBlobs::memory()),
        ),
    })
}

/// The stores of a registry that has run before, for maintenance commands:
/// they never create one. Err names the directory when there is none.
pub async fn open_existing_stores(
    config: &Config,
) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn BlobStore>)> {
    let dir = &config.data_dir;
    if config.storage == StorageBackend::Memory {
        anyhow::bail!(
            "maintenance needs a persistent store (storage: memory is private to its server)"
        );
    }
    let meta = SqliteMeta::open_existing(&dir.join(METADATA_DB)).await?;
    let blobs = LocalStore::open_existing(&dir.join(STORAGE_DIR))?;
    match (meta, blobs) {
        (Some(meta), Some(blobs)) => Ok((Arc::new(meta), Arc::new(blobs))),
        (Some(meta), None) => {
            // Metadata without a blob directory: a registry that never stored a blob.
            let blobs = LocalStore::open(&dir.join(STORAGE_DIR))?;
            Ok((Arc::new(meta), Arc::new(blobs)))
        }
        (None, _) => anyhow::bail!(
            "no registry data in {} (no {METADATA_DB}); is --data-dir (or the config's data_dir) right?",
            dir.display()
        ),
    }
}

/// The per-repository settings of the configuration.
pub fn settings(config: &Config) -> anyhow::Result<SettingsSource> {
    let policy_file = config.auth.as_ref().map(|a| a.policy_file.as_path());
    Ok(SettingsSource::open(
        config.repositories.clone(),
        policy_file,
    )?)
}

/// Everything `serve` reads before it binds, checked: the per-repository
/// settings, the policy and htpasswd files, the token signing key (or that
/// one can be made). `check-config` runs it too.
pub fn preflight(config: &Config) -> anyhow::Result<()> {
    settings(config)?;
    if let Some(auth) = &config.auth {
        Policy::load(&auth.policy_file)?;
        if let Some(users) = &auth.htpasswd_file {
            Htpasswd::load(users)?;
        }
        TokenService::check_key(&auth.token_key_file)?;
    }
    Ok(())
}

/// The services and access control the configuration names.
pub async fn open_state(config: &Config) -> anyhow::Result<AppState> {
    let (meta, blobs) = open_stores(config).await?;
    let settings = settings(config)?;
    settings.watch();
    let access = match &config.auth {
        Some(auth) => {
            let policy = Watched::load(&auth.policy_file, Policy::load)?;
            let access = AccessControl::open(auth, policy)?;
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
        registry: Arc::new(Registry::new(meta, blobs, settings)),
        access,
    })
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = open_state(&config).await?;
    let registry = state.registry.clone();
    tokio::spawn(expire_uploads(registry.clone(), config.upload_expiry));
    if let Some(every) = config.gc.interval {
        let opts = GcOptions {
            grace: config.gc.grace,
            delete_untagged: !config.gc.keep_untagged,
            dry_run: false,
        };
        tracing::info!(every_seconds = every.as_secs(), "gc runs inside the server");
        tokio::spawn(maintenance::gc_every(
            registry.meta.clone(),
            registry.blobs.clone(),
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
    let metrics_app = crate::metrics::router(registry.meta.clone());
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
    http::server::serve(
        listener,
        http::router(state),
        config.limits.clone(),
        shutdown_signal(),
    )
    .await;
    registry.meta.close().await;
    Ok(())
}

/// Binds `addr`, saying which listener could not when it fails.
async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {addr}: {e}"))
}

/// What a person starting `berth serve` by hand wants to know first: where
/// it listens, where the data goes, and how to push to it.
fn banner(config: &Config, api: SocketAddr, metrics: SocketAddr) -> String {
    let storage = match config.storage {
        StorageBackend::Filesystem => format!("data in {}", display(&config.data_dir)),
        StorageBackend::Memory => "data in memory (lost on exit)".to_string(),
    };
    let access = match &config.auth {
        Some(auth) => format!("access control from {}", display(&auth.policy_file)),
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

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Removes idle upload sessions (and their data), and upload data a crash
/// left without a session, every quarter of `expiry` (at most 10 min).
async fn expire_uploads(registry: Arc<Registry>, expiry: Duration) {
    let period = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let cutoff = std::time::SystemTime::now() - expiry;
        let expired = async {
            registry.expire_uploads(expiry).await?;
            maintenance::sweep_leftovers(
                registry.meta.as_ref(),
                registry.blobs.as_ref(),
                cutoff,
                false,
            )
            .await?;
            anyhow::Ok(())
        };
        if let Err(e) = expired.await {
            tracing::warn!(error = format!("{e:#}"), "expiring idle uploads failed");
        }
    }
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
