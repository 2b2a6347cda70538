//! Blob uploads: sessions (created, appended to chunk by chunk, finished
//! with the digest, cancelled, expired), single-request uploads, and mounts
//! from other repositories.
//!
//! A session lives in the metadata store with the running sha256 state, so
//! any process continues it; each chunk's bytes (the pieces the blob store
//! names) are recorded only once they are durable, and one request at a
//! time appends to a session (the store's upload lock, then the session
//! read again). The bytes become a blob only when their digest matched,
//! through [`publish`].

use std::time::Duration;

use bytes::Bytes;

use super::publish::{Publication, publish};
use super::{Body, Registry, Repository, Result, ServiceError};
use crate::meta::{NewPart, Upload, now_ms};
use crate::oci::digest::{Algorithm, Digest, Hasher};
use crate::storage::UploadLock;

/// Repositories an automatic mount (spec 1.1: `?mount=` without `from`)
/// looks at for the blob.
const AUTOMATIC_MOUNT_CANDIDATES: u32 = 1000;

/// Where a mount takes its blob from.
pub enum MountSource<'a> {
    /// `?from=`: that repository (the caller's pull on it was checked).
    Repository(&'a str),
    /// No `from`: any repository holding the blob for which `may_read`
    /// says yes, so that a mount never hands out bytes the caller could not
    /// read, nor tells whether a digest exists elsewhere.
    Any(&'a (dyn Fn(&str) -> bool + Send + Sync)),
}

impl Repository<'_> {
    /// A new upload session; returns its id.
    pub async fn start_upload(&self) -> Result<String> {
        self.refuse_if_mirrored()?;
        let id = uuid::Uuid::new_v4().to_string();
        self.meta().create_upload(self.name, &id).await?;
        Ok(id)
    }

    /// The session `id` of this repository.
    pub async fn upload(&self, id: &str) -> Result<Upload> {
        let unknown = || ServiceError::UploadUnknown {
            repo: self.name.to_string(),
            id: id.to_string(),
        };
        // Session ids are UUIDs we issued; anything else never reaches the stores.
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(unknown());
        }
        match self.meta().upload(id).await? {
            Some(u) if u.repository == self.name => Ok(u),
            _ => Err(unknown()),
        }
    }

    /// Cancels session `id`, with its data.
    pub async fn cancel_upload(&self, id: &str) -> Result<()> {
        self.upload(id).await?;
        self.discard(id).await
    }

    /// Links `digest` into this repository from `source`, if it may be
    /// mounted from there. False: not mountable (the caller starts an upload).
    pub async fn mount(&self, digest: &Digest, source: MountSource<'_>) -> Result<bool> {
        self.refuse_if_mirrored()?;
        let found = match source {
            MountSource::Repository(from) => {
                self.meta().repository_blob(from, digest).await?.is_some()
            }
            MountSource::Any(may_read) => self
                .meta()
                .blob_repositories(digest, AUTOMATIC_MOUNT_CANDIDATES)
                .await?
                .iter()
                .any(|repo| may_read(repo)),
        };
        if !found {
            return Ok(false);
        }
        Ok(self
            .meta()
            .mount_blob(self.name, digest, &self.settings.quotas)
            .await?)
    }

    /// Streams `body` into session `id` as its next chunk; `range` is the
    /// chunk's `Content-Range` (inclusive), if the client sent one. Returns
    /// the upload's new size.
    pub async fn append(&self, id: &str, range: Option<(u64, u64)>, body: Body) -> Result<u64> {
        let (_lock, upload) = self.locked(id).await?;
        self.append_to(&upload, range, body).await
    }

    /// Session `id`, locked against other appends and commits (see
    /// `BlobStore::lock_upload`), as it stands once locked. A session
    /// another request holds is refused as a concurrent append.
    async fn locked(&self, id: &str) -> Result<(UploadLock, Upload)> {
        // Unknown ids end here, before the store makes anything for them.
        let upload = self.upload(id).await?;
        let Some(lock) = self.blobs().lock_upload(id).await? else {
            return Err(ServiceError::ConcurrentAppend { size: upload.size });
        };
        Ok((lock, self.upload(id).await?))
    }

    async fn append_to(
        &self,
        upload: &Upload,
        range: Option<(u64, u64)>,
        body: Body,
    ) -> Result<u64> {
        if let Some((start, _)) = range
            && start != upload.size
        {
            return Err(ServiceError::ChunkOutOfOrder {
                start,
                size: upload.size,
            });
        }
        let mut hasher = match (&upload.hash_state, upload.size) {
            (_, 0) => Some(Hasher::new(Algorithm::Sha256)),
            (Some(state), _) => Hasher::sha256_from_state(state),
            (None, _) => None,
        };
        let appended = self
            .blobs()
            .append(
                &upload.id,
                &pieces(upload),
                None,
                body.stream,
                hasher.as_mut(),
            )
            .await?;
        let written = appended.size;
        let recorded = appended.pieces.join("\n");

        let rejected = match range {
            Some((start, end)) if written != end - start + 1 => {
                Some(ServiceError::ChunkLengthMismatch {
                    announced: end - start + 1,
                    got: written,
                })
            }
            _ if written == 0 => None,
            _ => {
                // The part is on disk already (write_part returns then): a
                // session row that survives a power failure never describes
                // bytes that were not written.
                let new_part = NewPart {
                    name: &recorded,
                    size: written,
                    hash_state: hasher.as_ref().and_then(Hasher::to_state),
                };
                if self
                    .meta()
                    .append_upload_part(&upload.id, upload.size, new_part)
                    .await?
                {
                    return Ok(upload.size + written);
                }
                Some(ServiceError::ConcurrentAppend { size: upload.size })
            }
        };
        // Nothing recorded: drop the pieces again.
        self.blobs()
            .discard_pieces(&upload.id, &appended.pieces)
            .await?;
        match rejected {
            Some(e) => Err(e),
            None => Ok(upload.size),
        }
    }

    /// Ends session `id` as blob `digest`, with a last chunk if `body` is
    /// given (`range`: its Content-Range).
    pub async fn finish(
        &self,
        id: &str,
        digest: &Digest,
        range: Option<(u64, u64)>,
        body: Option<Body>,
    ) -> Result<()> {
        let (_lock, mut upload) = self.locked(id).await?;
        if let Some(body) = body {
            if upload.size == 0 && range.is_none() {
                // The whole blob in the closing PUT (what most clients send
                // after their POST): published straight from the body.
                let published = self.publish_body(digest, body, Some(id)).await;
                self.end_session(id, published.is_ok()).await?;
                return published;
            }
            self.append_to(&upload, range, body).await?;
            upload = self.upload(id).await?;
        }
        self.commit(&upload, digest).await
    }

    /// `POST ?digest=`: the whole blob in one request, no session.
    pub async fn upload_whole(&self, digest: &Digest, body: Body) -> Result<()> {
        self.refuse_if_mirrored()?;
        self.publish_body(digest, body, None).await
    }

    /// Stores a blob a mirror fetched from its upstream: verified and linked
    /// as a push would be, which the mirror's repositories refuse to clients.
    pub(super) async fn cache_whole(&self, digest: &Digest, body: Body) -> Result<()> {
        self.publish_body(digest, body, None).await
    }

    /// Publishes a body that is the whole blob `digest`. A small one is read
    /// into memory, hashed and written to its place in one durable write; a
    /// larger one streams into a part of its own (under session `session`,
    /// or a fresh id), hashed on the way, and is renamed into place. The
    /// link ends `session`.
    async fn publish_body(&self, digest: &Digest, body: Body, session: Option<&str>) -> Result<()> {
        let body = match body.read_small(self.blobs().whole_body_limit()).await? {
            Ok(data) => return self.publish_small(digest, data, session).await,
            Err(body) => body,
        };
        let scratch = uuid::Uuid::new_v4().to_string();
        let id = session.unwrap_or(&scratch);
        let mut hasher = Hasher::new(digest.algorithm());
        let appended = self
            .blobs()
            .append(id, &[], Some(digest), body.stream, Some(&mut hasher))
            .await;
        let published = match appended {
            Ok(appended) => {
                let hashed = hasher.finish();
                if &hashed != digest {
                    Err(ServiceError::DigestMismatch {
                        expected: digest.clone(),
                        actual: hashed,
                    })
                } else {
                    let publication = self.publication(digest, appended.size, true, session);
                    publish(self.meta(), publication, || {
                        self.blobs().commit_upload(
                            id,
                            &appended.pieces,
                            digest,
                            Some(hashed.clone()),
                        )
                    })
                    .await
                    .map(drop)
                    .map_err(ServiceError::from)
                }
            }
            Err(e) => Err(e.into()),
        };
        if session.is_none() {
            self.blobs().delete_upload(id).await?;
        }
        published
    }

    async fn publish_small(
        &self,
        digest: &Digest,
        data: Bytes,
        session: Option<&str>,
    ) -> Result<()> {
        let hashed = Digest::of(digest.algorithm(), &data);
        if &hashed != digest {
            return Err(ServiceError::DigestMismatch {
                expected: digest.clone(),
                actual: hashed,
            });
        }
        let size = data.len() as u64;
        let publication = self.publication(digest, size, true, session);
        publish(self.meta(), publication, || async {
            self.blobs().put_verified(digest, data).await?;
            Ok(size)
        })
        .await?;
        Ok(())
    }

    /// Verifies and publishes a session's parts as `digest`, links it into
    /// the repository and ends the session (either way: a refused client
    /// starts again).
    async fn commit(&self, upload: &Upload, digest: &Digest) -> Result<()> {
        let hashed = match (digest.algorithm(), upload.size, &upload.hash_state) {
            (alg, 0, _) => Some(Digest::of(alg, b"")),
            (Algorithm::Sha256, _, Some(s)) => Hasher::sha256_from_state(s).map(Hasher::finish),
            _ => None,
        };
        if let Some(actual) = hashed.as_ref().filter(|h| *h != digest) {
            self.discard(&upload.id).await?;
            return Err(ServiceError::DigestMismatch {
                expected: digest.clone(),
                actual: actual.clone(),
            });
        }
        let publication = self.publication(digest, upload.size, hashed.is_some(), Some(&upload.id));
        let pieces = pieces(upload);
        let published = publish(self.meta(), publication, || {
            self.blobs()
                .commit_upload(&upload.id, &pieces, digest, hashed.clone())
        })
        .await;
        self.end_session(&upload.id, published.is_ok()).await?;
        published?;
        Ok(())
    }

    fn publication<'a>(
        &'a self,
        digest: &'a Digest,
        size: u64,
        verified: bool,
        upload: Option<&'a str>,
    ) -> Publication<'a> {
        Publication {
            repo: self.name,
            digest,
            size,
            verified,
            quotas: &self.settings.quotas,
            upload,
        }
    }

    /// Removes an upload's session, then its data (an orphaned part is
    /// swept later; a session without its parts would not be).
    async fn discard(&self, id: &str) -> Result<()> {
        self.meta().delete_upload(id).await?;
        self.blobs().delete_upload(id).await?;
        Ok(())
    }

    /// After publishing, the session is over either way. A published blob's
    /// link already removed the session row.
    async fn end_session(&self, id: &str, published: bool) -> Result<()> {
        if published {
            self.blobs().delete_upload(id).await?;
            Ok(())
        } else {
            self.discard(id).await
        }
    }
}

/// The store's pieces of an upload: each recorded append holds the pieces
/// it wrote, one per line.
fn pieces(upload: &Upload) -> Vec<String> {
    upload
        .parts
        .iter()
        .flat_map(|p| p.split('\n'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

impl Registry {
    /// Removes upload sessions (and their data) not touched for `expiry`.
    pub async fn expire_uploads(&self, expiry: Duration) -> Result<()> {
        let before = now_ms() - expiry.as_millis() as i64;
        for id in self.meta.stale_uploads(before).await? {
            self.meta.delete_upload(&id).await?;
            self.blobs.delete_upload(&id).await?;
            tracing::info!(upload = %id, "expired idle upload");
        }
        Ok(())
    }
}
