//! A mirror's repositories (`<mirror>/<upstream name>`): served from what
//! is cached, fetched from the upstream on a miss.
//!
//! - A manifest by digest never changes: once cached, the upstream is not
//!   asked again. A tag is served from the cache for the mirror's TTL, then
//!   checked with a HEAD (same digest: no GET) and fetched if it moved.
//! - A blob is streamed to the first client while it is stored; it becomes
//!   visible to others only once its digest matched (the upload path of any
//!   push, `upload_whole`).
//! - One fetch per tag, manifest or blob at a time: in this process through
//!   the mirror's flights, across processes through a claim in the
//!   metadata store (renewed while the fetch runs; a dead holder's claim
//!   goes stale and is taken over). Everyone else waits and then reads
//!   what the fetch stored.
//! - When the upstream is rate limited, failing or unreachable, cached
//!   content is served anyway (logged, counted as `stale`) and the upstream
//!   is asked again after [`STALE_RETRY`]; what is not cached fails with an
//!   error that names the upstream and the cause.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use futures::stream::{BoxStream, StreamExt};

use super::{Body, Registry, Repository, Result, ServiceError};
use crate::meta::{ManifestRecord, MetaStore, NewManifest, Reference, now_ms};
use crate::mirror::flight::Leader;
use crate::mirror::{Mirror, PROCESS, Turn, UpstreamError, UpstreamManifest};
use crate::oci::digest::Digest;
use crate::oci::manifest;
use crate::oci::names::TagOrDigest;

/// A fetch claim not renewed for this long belongs to a process that died.
const CLAIM_STALE: Duration = Duration::from_secs(60);
/// How often a running fetch renews its claim.
const CLAIM_RENEW: Duration = Duration::from_secs(15);
/// How often a process waiting for another's fetch looks for the result.
const PEER_POLL: Duration = Duration::from_millis(200);
/// After serving a stale tag, how long before the upstream is asked again.
const STALE_RETRY: Duration = Duration::from_secs(30);
/// A manifest's pull is recorded (for eviction) at most this often.
const PULL_RECORD_EVERY: Duration = Duration::from_secs(60);

/// A blob fetched for a client.
pub enum Fetched {
    /// It is in the repository now (another request fetched it): serve it
    /// as any blob.
    Stored,
    /// It is coming from the upstream: these are its bytes, as they are
    /// stored.
    Streaming {
        size: u64,
        stream: BoxStream<'static, std::io::Result<Bytes>>,
    },
}

/// The right to fetch one key: this process's flight and the claim in the
/// metadata store, released when dropped.
struct Leadership {
    _leader: Leader,
    meta: Arc<dyn MetaStore>,
    key: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renew.abort();
        let (meta, key) = (self.meta.clone(), std::mem::take(&mut self.key));
        tokio::spawn(async move {
            if let Err(e) = meta.release_fetch(&key, &PROCESS).await {
                // It goes stale by itself after CLAIM_STALE.
                tracing::debug!(
                    key,
                    error = crate::report::chain(&e),
                    "mirror: releasing a fetch claim"
                );
            }
        });
    }
}

fn upstream_error(mirror: &Mirror, e: UpstreamError) -> ServiceError {
    let (name, url) = (mirror.name().to_string(), mirror.upstream.url().to_string());
    match e {
        UpstreamError::Unavailable(cause) => ServiceError::UpstreamUnavailable {
            mirror: name,
            url,
            cause,
        },
        UpstreamError::NotFound => ServiceError::UpstreamFailed {
            mirror: name,
            url,
            cause: "not found".into(),
        },
        UpstreamError::Refused(cause) | UpstreamError::Invalid(cause) => {
            ServiceError::UpstreamFailed {
                mirror: name,
                url,
                cause,
            }
        }
    }
}

fn count(mirror: &Mirror, result: &str) {
    crate::metrics::MIRROR_PULLS
        .with_label_values(&[mirror.name(), result])
        .inc();
}

impl Repository<'_> {
    /// The mirror this repository is in, if it lets `upstream` through.
    fn mirror_for_pull(&self) -> Result<Option<(Arc<Mirror>, &str)>> {
        let Some((mirror, upstream)) = &self.mirror else {
            return Ok(None);
        };
        if !mirror.allows(upstream) {
            return Err(ServiceError::MirrorRefused {
                mirror: mirror.name().to_string(),
                repo: upstream.to_string(),
            });
        }
        Ok(Some((mirror.clone(), upstream)))
    }

    /// Refuses a push (or delete) into a mirror's repository, unless the
    /// mirror allows pushes.
    pub(super) fn refuse_if_mirrored(&self) -> Result<()> {
        match &self.mirror {
            Some((mirror, _)) if !mirror.allows_push() => Err(ServiceError::MirrorReadOnly {
                repo: self.name.to_string(),
                mirror: mirror.name().to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Manifest `reference` of a mirror's repository, from the cache or the
    /// upstream; None for a repository that is not a mirror's.
    pub(super) async fn mirrored_manifest(
        &self,
        reference: &TagOrDigest,
    ) -> Result<Option<ManifestRecord>> {
        let Some((mirror, upstream)) = self.mirror_for_pull()? else {
            return Ok(None);
        };
        let key = format!("manifest:{}:{reference}", self.name);
        let ready = || async {
            Ok(match self.local_manifest(reference).await? {
                Some(_) => self.fresh(&mirror, reference).await?,
                None => false,
            })
        };
        if ready().await? {
            let record = self.cached(&mirror, reference).await?;
            count(&mirror, "hit");
            return Ok(Some(record));
        }
        let leadership = self.lead_or_wait(&mirror, &key, ready).await?;
        if leadership.is_none() {
            // Another request fetched it meanwhile.
            let record = self.cached(&mirror, reference).await?;
            count(&mirror, "hit");
            return Ok(Some(record));
        }
        let record = self.fetch_manifest(&mirror, upstream, reference).await;
        drop(leadership);
        record.map(Some)
    }

    async fn local_manifest(&self, reference: &TagOrDigest) -> Result<Option<ManifestRecord>> {
        let reference = match reference {
            TagOrDigest::Tag(t) => Reference::Tag(t),
            TagOrDigest::Digest(d) => Reference::Digest(d),
        };
        Ok(self.meta().manifest(self.name, reference).await?)
    }

    /// The cached manifest, recorded as pulled.
    async fn cached(&self, mirror: &Mirror, reference: &TagOrDigest) -> Result<ManifestRecord> {
        let record = self
            .local_manifest(reference)
            .await?
            .ok_or_else(|| self.manifest_unknown(reference))?;
        self.pulled(mirror, &record.digest).await;
        Ok(record)
    }

    /// Whether the cached `reference` may be served without asking the
    /// upstream: a digest always, a tag within the mirror's TTL.
    async fn fresh(&self, mirror: &Mirror, reference: &TagOrDigest) -> Result<bool> {
        let TagOrDigest::Tag(tag) = reference else {
            return Ok(true);
        };
        let checked = self.meta().tag_checked_at(self.name, tag).await?;
        let ttl = mirror.tag_ttl.as_millis() as i64;
        Ok(checked.is_some_and(|at| now_ms() - at < ttl))
    }

    async fn fetch_manifest(
        &self,
        mirror: &Mirror,
        upstream: &str,
        reference: &TagOrDigest,
    ) -> Result<ManifestRecord> {
        let local = self.local_manifest(reference).await?;
        let tag = match reference {
            TagOrDigest::Tag(tag) => Some(tag.as_str()),
            TagOrDigest::Digest(_) => None,
        };
        if let (Some(tag), Some(local)) = (tag, &local) {
            // Cached but past its TTL: has the tag moved?
            match mirror.upstream.manifest_digest(upstream, tag).await {
                Ok(d) if d.to_string() == local.digest => {
                    self.meta()
                        .set_tag_checked(self.name, tag, now_ms())
                        .await?;
                    count(mirror, "revalidated");
                    self.pulled(mirror, &local.digest).await;
                    return Ok(local.clone());
                }
                Ok(_) => {}
                Err(UpstreamError::Unavailable(cause)) => {
                    return self.stale(mirror, tag, local.clone(), &cause).await;
                }
                Err(UpstreamError::NotFound) => {
                    // Gone upstream: not served from here either.
                    self.meta().delete_tag(self.name, tag).await?;
                    return Err(self.manifest_unknown(reference));
                }
                Err(e) => return Err(upstream_error(mirror, e)),
            }
        }
        let fetched = match mirror
            .upstream
            .manifest(upstream, &reference.to_string())
            .await
        {
            Ok(fetched) => fetched,
            Err(UpstreamError::Unavailable(cause)) => {
                return match (tag, local) {
                    (Some(tag), Some(local)) => self.stale(mirror, tag, local, &cause).await,
                    _ => Err(upstream_error(mirror, UpstreamError::Unavailable(cause))),
                };
            }
            Err(UpstreamError::NotFound) => return Err(self.manifest_unknown(reference)),
            Err(e) => return Err(upstream_error(mirror, e)),
        };
        let record = self.store_fetched(mirror, &fetched, tag).await?;
        if let Some(tag) = tag {
            self.meta()
                .set_tag_checked(self.name, tag, now_ms())
                .await?;
        }
        count(mirror, "miss");
        self.pulled(mirror, &record.digest).await;
        Ok(record)
    }

    /// Serves a tag the upstream could not be asked about, and asks again
    /// after [`STALE_RETRY`] rather than on every pull.
    async fn stale(
        &self,
        mirror: &Mirror,
        tag: &str,
        local: ManifestRecord,
        cause: &str,
    ) -> Result<ManifestRecord> {
        tracing::warn!(
            mirror = mirror.name(),
            repository = self.name,
            tag,
            cause,
            "mirror: the upstream is unavailable; serving the cached tag"
        );
        count(mirror, "stale");
        let retry_at =
            now_ms() - mirror.tag_ttl.as_millis() as i64 + STALE_RETRY.as_millis() as i64;
        self.meta()
            .set_tag_checked(self.name, tag, retry_at)
            .await?;
        self.pulled(mirror, &local.digest).await;
        Ok(local)
    }

    /// Stores a manifest fetched from the upstream (tagged `tag`). Its blobs
    /// and children come when they are first pulled.
    async fn store_fetched(
        &self,
        mirror: &Mirror,
        fetched: &UpstreamManifest,
        tag: Option<&str>,
    ) -> Result<ManifestRecord> {
        let content_type = (!fetched.media_type.is_empty()).then_some(fetched.media_type.as_str());
        let parsed = manifest::parse(&fetched.content, content_type).map_err(|e| {
            upstream_error(
                mirror,
                UpstreamError::Invalid(format!("manifest {}: {e}", fetched.digest)),
            )
        })?;
        let tags: Vec<String> = tag.into_iter().map(str::to_string).collect();
        let annotations = parsed
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default());
        self.meta()
            .put_manifest(
                self.name,
                NewManifest {
                    digest: &fetched.digest,
                    media_type: &parsed.media_type,
                    artifact_type: parsed.artifact_type.as_deref(),
                    subject: parsed.subject.as_ref(),
                    annotations,
                    content: &fetched.content,
                    blobs: &parsed.blobs,
                    manifests: &parsed.manifests,
                    tags: &tags,
                    quotas: &[],
                    immutable_tags: &[],
                    check_children: false,
                },
            )
            .await?;
        Ok(ManifestRecord {
            digest: fetched.digest.to_string(),
            media_type: parsed.media_type,
            content: fetched.content.clone(),
        })
    }

    /// Records that manifest `digest` was pulled (for eviction), at most
    /// once a minute per manifest and process. A failure only costs
    /// eviction order.
    async fn pulled(&self, mirror: &Mirror, digest: &str) {
        let key = format!("{}@{digest}", self.name);
        {
            let mut recent = mirror
                .recent_pulls
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if recent
                .get(&key)
                .is_some_and(|at| at.elapsed() < PULL_RECORD_EVERY)
            {
                return;
            }
            if recent.len() > 100_000 {
                recent.clear();
            }
            recent.insert(key, Instant::now());
        }
        if let Err(e) = self.meta().record_pull(self.name, digest, now_ms()).await {
            tracing::warn!(error = crate::report::chain(&e), "mirror: recording a pull");
        }
    }

    /// The size of blob `digest` upstream (a HEAD of a blob not cached).
    pub async fn upstream_blob_size(&self, digest: &Digest) -> Result<u64> {
        let Some((mirror, upstream)) = self.mirror_for_pull()? else {
            return Err(self.blob_unknown(digest));
        };
        match mirror.upstream.blob_size(upstream, digest).await {
            Ok(size) => Ok(size),
            Err(UpstreamError::NotFound) => Err(self.blob_unknown(digest)),
            Err(e) => Err(upstream_error(&mirror, e)),
        }
    }

    /// A cached blob was served.
    pub fn mirror_hit(&self) {
        if let Some((mirror, _)) = &self.mirror {
            count(mirror, "hit");
        }
    }

    /// Leads the fetch of `key` (None: while waiting for another request's
    /// fetch, `ready` became true, so there is nothing to fetch).
    async fn lead_or_wait<F, Fut>(
        &self,
        mirror: &Mirror,
        key: &str,
        ready: F,
    ) -> Result<Option<Leadership>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool>>,
    {
        loop {
            let leader = match mirror.flights.turn(key) {
                Turn::Follow(flight) => {
                    Turn::wait(&flight).await;
                    if ready().await? {
                        return Ok(None);
                    }
                    // The leader failed: try ourselves.
                    continue;
                }
                Turn::Lead(leader) => leader,
            };
            // Leading in this process; is another process at it already?
            loop {
                let now = now_ms();
                let stale_before = now - CLAIM_STALE.as_millis() as i64;
                if self
                    .meta()
                    .claim_fetch(key, &PROCESS, now, stale_before)
                    .await?
                {
                    return Ok(Some(Leadership {
                        _leader: leader,
                        meta: self.registry.meta.clone(),
                        key: key.to_string(),
                        renew: tokio::spawn(renew(self.registry.meta.clone(), key.to_string())),
                    }));
                }
                tokio::time::sleep(PEER_POLL).await;
                if ready().await? {
                    return Ok(None);
                }
            }
        }
    }
}

/// Keeps a fetch claim fresh while the fetch runs.
async fn renew(meta: Arc<dyn MetaStore>, key: String) {
    loop {
        tokio::time::sleep(CLAIM_RENEW).await;
        let now = now_ms();
        if let Err(e) = meta.claim_fetch(&key, &PROCESS, now, 0).await {
            tracing::warn!(
                key,
                error = crate::report::chain(&e),
                "mirror: renewing a fetch claim"
            );
        }
    }
}

impl Registry {
    /// Blob `digest` of mirror repository `name`, not cached there: fetched
    /// from the upstream (once, whoever else asks) and streamed while it is
    /// stored, or already stored by another request meanwhile.
    pub async fn mirrored_blob(self: &Arc<Self>, name: &str, digest: &Digest) -> Result<Fetched> {
        let repo = self.repository(name);
        let Some((mirror, upstream)) = repo.mirror_for_pull()? else {
            return Err(repo.blob_unknown(digest));
        };
        let key = format!("blob:{name}:{digest}");
        let ready = || async { Ok(repo.meta().repository_blob(name, digest).await?.is_some()) };
        let Some(leadership) = repo.lead_or_wait(&mirror, &key, ready).await? else {
            return Ok(Fetched::Stored);
        };
        if ready().await? {
            return Ok(Fetched::Stored);
        }
        let (size, from_upstream) = match mirror.upstream.blob(upstream, digest).await {
            Ok(found) => found,
            Err(UpstreamError::NotFound) => return Err(repo.blob_unknown(digest)),
            Err(e) => return Err(upstream_error(&mirror, e)),
        };
        count(&mirror, "miss");
        let (to_client, for_client) = mpsc::channel(8);
        let (to_store, for_store) = mpsc::channel(8);
        tokio::spawn(pump(from_upstream, to_client, to_store));
        let (registry, name, digest) = (self.clone(), name.to_string(), digest.clone());
        tokio::spawn(async move {
            let body = Body {
                stream: for_store.boxed(),
                length: Some(size),
            };
            match registry.repository(&name).cache_whole(&digest, body).await {
                Ok(()) => tracing::info!(repository = name, %digest, size, "mirror: blob cached"),
                Err(e) => tracing::warn!(
                    repository = name,
                    %digest,
                    error = crate::report::chain(&e),
                    "mirror: the blob fetched upstream was not stored"
                ),
            }
            // Waiting requests look again now.
            drop(leadership);
        });
        Ok(Fetched::Streaming {
            size,
            stream: for_client.boxed(),
        })
    }
}

/// Copies the upstream's bytes to the client and to the store. A client
/// that goes away does not stop the store; the store failing does not stop
/// the client (it checks the digest too).
async fn pump(
    mut from: BoxStream<'static, std::io::Result<Bytes>>,
    mut client: mpsc::Sender<std::io::Result<Bytes>>,
    mut store: mpsc::Sender<std::io::Result<Bytes>>,
) {
    let (mut client_open, mut store_open) = (true, true);
    while let Some(item) = from.next().await {
        match item {
            Ok(chunk) => {
                if store_open && store.send(Ok(chunk.clone())).await.is_err() {
                    store_open = false;
                }
                if client_open && client.send(Ok(chunk)).await.is_err() {
                    client_open = false;
                }
                if !client_open && !store_open {
                    return;
                }
            }
            Err(e) => {
                let message = e.to_string();
                let _ = store
                    .send(Err(std::io::Error::other(message.clone())))
                    .await;
                let _ = client.send(Err(std::io::Error::other(message))).await;
                return;
            }
        }
    }
}
