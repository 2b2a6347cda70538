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
use crate::config::{Blobs, Config, LogFormat, Metadata, Secret};
use crate::http::{self, AppState};
use crate::maintenance::{self, gc::GcOptions};
use crate::meta::{MetaStore, PostgresMeta, SqliteMeta};
use crate::service::Registry;
use crate::settings::SettingsSource;
use crate::storage::{BlobStore, LocalStore, ObjectBlobs};
use crate::watch::Watched;

/// The blob store's directory under the data directory.
pub const STORAGE_DIR: &str = "storage";

/// The stores of the configuration, created if they are not there yet.
pub async fn open_stores(
    config: &Config,
) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn BlobStore>)> {
    Ok((
        open_metadata(config, true).await?,
        open_blobs(config, true).await?,
    ))
}

/// The stores of a registry that has run before, for maintenance commands:
/// they never create a database or a blob directory. Err names the
/// directory when there is none.
pub async fn open_existing_stores(
    config: &Config,
) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn BlobStore>)> {
    if matches!(config.metadata, Metadata::Memory) {
        anyhow::bail!(
            "maintenance needs a persistent store (storage: memory is private to its server)"
        );
    }
    Ok((
        open_metadata(config, false).await?,
        open_blobs(config, false).await?,
    ))
}

async fn open_metadata(config: &Config, create: bool) -> anyhow::Result<Arc<dyn MetaStore>> {
    Ok(match &config.metadata {
        Metadata::Sqlite(path) if create => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Arc::new(SqliteMeta::open(path).await?)
        }
        Metadata::Sqlite(path) => match SqliteMeta::open_existing(path).await? {
            Some(meta) => Arc::new(meta),
            None => anyhow::bail!(
                "no registry data in {} (no {}); is --data-dir (or the config's data_dir) right?",
                config.data_dir.display(),
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
        },
        Metadata::Postgres {
            url,
            pool_size,
            timeout,
        } => {
            let url = match url {
                Secret::Value(url) => url.clone(),
                Secret::File(path) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read database_url_file {}: {e}", path.display())
                    })?
                    .trim()
                    .to_string(),
            };
            Arc::new(PostgresMeta::connect(&url, *pool_size, *timeout).await?)
        }
        Metadata::Memory => Arc::new(SqliteMeta::memory().await?),
    })
}

async fn open_blobs(config: &Config, create: bool) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match &config.blobs {
        Blobs::Local(dir) if create => Arc::new(LocalStore::open(dir)?),
        // Metadata without a blob directory: a registry that never stored a
        // blob; the maintenance commands find nothing in an empty one.
        Blobs::Local(dir) => match LocalStore::open_existing(dir)? {
            Some(store) => Arc::new(store),
            None => Arc::new(ObjectBlobs::memory()),
        },
        Blobs::S3(s3) => Arc::new(crate::storage::s3::open(s3).await?),
        Blobs::Memory => Arc::new(ObjectBlobs::memory()),
    })
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
            let access = AccessControl::open(auth, policy, meta.clone())?;
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
        registry: Arc::new(Registry::new(
            meta,
            blobs,
            settings,
            crate::mirror::Mirrors::open(&config.mirrors)?,
        )),
        access,
        stopping: Arc::default(),
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
            cache_limits: maintenance::evict::CacheLimit::of(&config.mirrors),
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
    // Beside /metrics: what the operator reads (policy loaded, usage).
    let metrics_app =
        crate::metrics::router(registry.meta.clone()).merge(http::ops::router(state.clone()));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics, metrics_app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    tracing::info!(
        listen = %api_addr,
        metadata = ?config.metadata,
        blobs = %blobs_label(&config.blobs),
        "berth is serving the OCI distribution API"
    );
    if config.log_format == LogFormat::Text {
        eprintln!("{}", banner(&config, api_addr, metrics_addr));
    }
    let stopping = state.stopping.clone();
    let delay = config.shutdown_delay;
    let shutdown = async move {
        shutdown_signal().await;
        // Out of the load balancer first, then stop accepting.
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        if !delay.is_zero() {
            tracing::info!(
                delay_seconds = delay.as_secs(),
                "shutting down: /readyz says so; still serving until the delay has passed"
            );
            tokio::time::sleep(delay).await;
        }
    };
    http::server::serve(
        listener,
        http::router(state),
        config.limits.clone(),
        shutdown,
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
    let storage = format!(
        "metadata: {:?}; blobs: {}",
        config.metadata,
        blobs_label(&config.blobs)
    );
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

fn blobs_label(blobs: &Blobs) -> String {
    match blobs {
        Blobs::Local(dir) => format!("on disk in {}", dir.display()),
        Blobs::S3(s3) => format!(
            "bucket {} at {}",
            s3.bucket.as_deref().unwrap_or("?"),
            s3.endpoint.as_deref().unwrap_or("AWS")
        ),
        Blobs::Memory => "in memory (lost on exit)".to_string(),
    }
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

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
