//! Blobs in an object store (`object_store`): an S3-compatible bucket, or
//! memory. An upload is a multipart upload, so a session continues in any
//! process and the bytes are written once:
//!
//! - each append streams into parts of `PART_SIZE`; what is left at its end
//!   (under S3's 5 MiB minimum part size) is kept as a small *tail* object;
//!   tails pile up until they and the next bytes make a part, which is sent
//!   with them in front (chunks of any size work; only the bytes of chunks
//!   under 5 MiB are written twice, once as a tail and once in a part);
//! - the pieces an append returns name the multipart upload and its parts
//!   (`mp:`, `part:`, `tail:`), and the service records them with the
//!   session: the state lives in the metadata store, not in a process;
//! - when the digest is known before the bytes (a whole blob in one
//!   request), the multipart upload writes where the blob goes and becomes
//!   visible only when it is completed, after the digest matched; otherwise
//!   it is completed under the upload and copied into place;
//! - a marker object under the upload names its multipart upload, so that
//!   deleting an upload (cancelled, expired, left by a crash) aborts it and
//!   no parts are left behind.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use super::{Appended, BlobStore, BodyStream, ByteStream, Result, StorageError, drain};
use crate::oci::digest::{Digest, Hasher};

/// Bytes per part written.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// The smallest part S3 takes (but the last).
const MIN_PART: usize = 5 * 1024 * 1024;
/// The largest object S3 copies in one request; larger ones are rewritten.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// Bodies read into memory whole and written in one request.
const WHOLE_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// A store that also takes multipart uploads piece by piece.
pub trait Backend: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Backend for T {}

pub struct ObjectBlobs {
    store: Arc<dyn Backend>,
    /// Key prefix inside the bucket ("" or "dir/").
    prefix: String,
    /// Signs blob GETs for redirects (S3 with `redirect`).
    signer: Option<Arc<dyn Signer>>,
}

/// Bytes gathered for a part: the chunks as they came, not copied.
#[derive(Default)]
struct Chunks {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
    }

    /// The chunks as one payload; empties the buffer.
    fn take(&mut self) -> PutPayload {
        self.len = 0;
        std::mem::take(&mut self.chunks).into_iter().collect()
    }

    /// Puts `front` before what is gathered.
    fn prepend(&mut self, front: Vec<Bytes>) {
        self.len += front.iter().map(Bytes::len).sum::<usize>();
        self.chunks.splice(0..0, front);
    }
}

/// A recorded upload, parsed from its pieces.
#[derive(Debug, Default)]
struct Pieces {
    /// The multipart upload and where it writes.
    multipart: Option<(Path, String)>,
    /// Completed parts: etag and size, in order.
    parts: Vec<(String, u64)>,
    /// Bytes not yet in a part, in order: the objects and their sizes.
    tails: Vec<(Path, u64)>,
}

impl ObjectBlobs {
    pub fn new(store: Arc<dyn Backend>, prefix: &str, signer: Option<Arc<dyn Signer>>) -> Self {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Self {
            store,
            prefix,
            signer,
        }
    }

    /// Blobs in memory, lost with the process.
    pub fn memory() -> Self {
        Self::new(Arc::new(InMemory::new()), "", None)
    }

    fn key(&self, rest: &str) -> Path {
        Path::from(format!("{}{rest}", self.prefix))
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.key(&format!(
            "blobs/{}/{}/{}",
            digest.algorithm().as_str(),
            &hex[..2],
            hex
        ))
    }

    fn upload_key(&self, upload: &str, name: &str) -> Path {
        self.key(&format!("uploads/{upload}/{name}"))
    }

    /// Reads `pieces` (in the order recorded): a tail is superseded by any
    /// later piece (the append that came after took its bytes along).
    fn parse(&self, upload: &str, pieces: &[String]) -> Result<Pieces> {
        let bad = |p: &str| {
            StorageError::Io(std::io::Error::other(format!(
                "upload {upload}: a recorded piece is not understood: `{p}`"
            )))
        };
        let mut parsed = Pieces::default();
        for piece in pieces {
            let (kind, rest) = piece.split_once(':').ok_or_else(|| bad(piece))?;
            match kind {
                "mp" => {
                    let (target, id) = rest.split_once(':').ok_or_else(|| bad(piece))?;
                    parsed.multipart = Some((Path::from(target), id.to_string()));
                }
                "part" => {
                    let (size, etag) = rest.split_once(':').ok_or_else(|| bad(piece))?;
                    let size = size.parse().map_err(|_| bad(piece))?;
                    parsed.parts.push((etag.to_string(), size));
                    // A part takes every tail before it.
                    parsed.tails.clear();
                }
                "tail" => {
                    let (name, size) = rest.split_once(':').ok_or_else(|| bad(piece))?;
                    let size = size.parse().map_err(|_| bad(piece))?;
                    parsed.tails.push((self.upload_key(upload, name), size));
                }
                _ => return Err(bad(piece)),
            }
        }
        Ok(parsed)
    }

    /// Starts the multipart upload of `upload` writing at `target`, and
    /// leaves a marker naming it under the upload (for delete_upload).
    async fn start_multipart(&self, upload: &str, target: &Path) -> Result<String> {
        let id = self.store.create_multipart(target).await?;
        let marker = format!("{target}\n{id}");
        self.store
            .put(
                &self.upload_key(upload, "multipart"),
                PutPayload::from(marker),
            )
            .await?;
        Ok(id)
    }

    /// Aborts the multipart upload `upload`'s marker names, if any.
    async fn abort_marked(&self, upload: &str) -> Result<()> {
        let marker = self.upload_key(upload, "multipart");
        let text = match self.store.get(&marker).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8_lossy(&text);
        if let Some((target, id)) = text.split_once('\n')
            && let Err(e) = self
                .store
                .abort_multipart(&Path::from(target), &id.to_string())
                .await
        {
            // Completed or aborted already (a crash after completing and
            // before the marker went), or the store is failing: the objects
            // go regardless; a bucket lifecycle rule on incomplete multipart
            // uploads is the backstop.
            tracing::warn!(
                upload,
                error = crate::report::chain(&e),
                "could not abort a multipart upload"
            );
        }
        Ok(())
    }

    /// Sends `buffer` as the next part of the upload's multipart upload
    /// (started here at the first part: where the blob goes when `target`
    /// is known and nothing came before, else under the upload), and
    /// records it in `state` and `new`.
    async fn put_next_part(
        &self,
        upload: &str,
        pieces: &[String],
        target: Option<&Digest>,
        state: &mut Pieces,
        new: &mut Vec<String>,
        buffer: &mut Chunks,
    ) -> Result<()> {
        let len = buffer.len as u64;
        let part = buffer.take();
        let (path, id) = match &state.multipart {
            Some(mp) => mp.clone(),
            None => {
                let at = match (target, pieces.is_empty()) {
                    (Some(d), true) => self.blob_key(d),
                    _ => self.upload_key(upload, "data"),
                };
                let id = self.start_multipart(upload, &at).await?;
                new.push(format!("mp:{at}:{id}"));
                state.multipart = Some((at.clone(), id.clone()));
                (at, id)
            }
        };
        let PartId { content_id } = self
            .store
            .put_part(&path, &id, state.parts.len(), part)
            .await?;
        new.push(format!("part:{len}:{content_id}"));
        state.parts.push((content_id, len));
        state.tails.clear();
        Ok(())
    }

    /// The bytes of the upload's tails, in order.
    async fn read_tails(&self, state: &Pieces) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(state.tails.len());
        for (tail, _) in &state.tails {
            out.push(self.store.get(tail).await?.bytes().await?);
        }
        Ok(out)
    }

    /// Copies `from` to `to`, by a copy in the store where it takes the
    /// object's size, else by reading and writing it again.
    async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<()> {
        if size <= MAX_COPY {
            self.store.copy(from, to).await?;
            return Ok(());
        }
        let id = self.store.create_multipart(to).await?;
        let mut source = self.store.get(from).await?.into_stream();
        let mut parts = Vec::new();
        let mut buffer = BytesMut::new();
        let result: Result<()> = async {
            while let Some(chunk) = source.next().await {
                buffer.extend_from_slice(&chunk?);
                while buffer.len() >= PART_SIZE {
                    let part = buffer.split_to(PART_SIZE).freeze();
                    parts.push(
                        self.store
                            .put_part(to, &id, parts.len(), part.into())
                            .await?,
                    );
                }
            }
            if !buffer.is_empty() || parts.is_empty() {
                let part = std::mem::take(&mut buffer).freeze();
                parts.push(
                    self.store
                        .put_part(to, &id, parts.len(), part.into())
                        .await?,
                );
            }
            self.store.complete_multipart(to, &id, parts).await?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self.store.abort_multipart(to, &id).await;
        }
        result
    }
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn ping(&self) -> Result<()> {
        // A HEAD of a key nobody writes: "not found" is an answer.
        match self.store.head(&self.key("ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.store.head(&self.blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = self.blob_key(digest);
        let range = match range {
            // Clamp to the blob, as the trait promises.
            Some(r) => {
                let size = self
                    .size(digest)
                    .await?
                    .ok_or_else(|| StorageError::BlobMissing(digest.clone()))?;
                Some(r.start.min(size)..r.end.min(size))
            }
            None => None,
        };
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::BlobMissing(digest.clone()));
            }
            other => other?,
        };
        Ok(result.into_stream().map_err(StorageError::from).boxed())
    }

    fn whole_body_limit(&self) -> usize {
        WHOLE_BODY_LIMIT
    }

    async fn put_verified(&self, digest: &Digest, data: Bytes) -> Result<()> {
        self.store
            .put(&self.blob_key(digest), PutPayload::from(data))
            .await?;
        Ok(())
    }

    async fn append(
        &self,
        upload: &str,
        pieces: &[String],
        target: Option<&Digest>,
        mut body: BodyStream,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<Appended> {
        let mut state = self.parse(upload, pieces)?;
        // Bytes waiting in tails: read back only when they go into a part.
        let mut waiting: usize = state.tails.iter().map(|(_, n)| *n as usize).sum();
        // The new bytes of the next part, as the chunks that came (no copy).
        let mut buffer = Chunks::default();
        let mut new = Vec::new();
        let mut size = 0u64;
        let written: Result<()> = async {
            loop {
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => Some(chunk),
                    Some(Err(e)) => return Err(StorageError::Body(e.to_string())),
                    None => None,
                };
                let done = chunk.is_none();
                let mut chunk = chunk.unwrap_or_default();
                if let Some(h) = hasher.as_deref_mut() {
                    h.update(&chunk);
                }
                size += chunk.len() as u64;
                while waiting + buffer.len + chunk.len() > PART_SIZE {
                    if waiting > 0 {
                        buffer.prepend(self.read_tails(&state).await?);
                        waiting = 0;
                    }
                    let room = PART_SIZE - buffer.len;
                    buffer.push(chunk.split_to(room));
                    self.put_next_part(upload, pieces, target, &mut state, &mut new, &mut buffer)
                        .await?;
                }
                buffer.push(chunk);
                if done {
                    break;
                }
            }
            // What is left becomes a part if S3 takes it as one, else a tail.
            if waiting + buffer.len >= MIN_PART {
                if waiting > 0 {
                    buffer.prepend(self.read_tails(&state).await?);
                }
                self.put_next_part(upload, pieces, target, &mut state, &mut new, &mut buffer)
                    .await?;
            } else if buffer.len > 0 {
                let name = format!("tail-{}", uuid::Uuid::new_v4().simple());
                let len = buffer.len;
                self.store
                    .put(&self.upload_key(upload, &name), buffer.take())
                    .await?;
                new.push(format!("tail:{name}:{len}"));
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => Ok(Appended { pieces: new, size }),
            Err(e) => {
                if !matches!(e, StorageError::Body(_)) {
                    drain(&mut body).await;
                }
                let _ = self.discard_pieces(upload, &new).await;
                Err(e)
            }
        }
    }

    async fn commit_upload(
        &self,
        upload: &str,
        pieces: &[String],
        expected: &Digest,
        hashed: Option<Digest>,
    ) -> Result<u64> {
        let mismatch = |actual: Digest| StorageError::DigestMismatch {
            expected: expected.clone(),
            actual,
        };
        if let Some(actual) = hashed.clone().filter(|a| a != expected) {
            return Err(mismatch(actual));
        }
        let state = self.parse(upload, pieces)?;
        let target = self.blob_key(expected);
        let Some((path, id)) = state.multipart.clone() else {
            // Everything is in tails, under 5 MiB (or nothing was sent): one put.
            let data: Bytes = self.read_tails(&state).await?.concat().into();
            let actual = Digest::of(expected.algorithm(), &data);
            if &actual != expected {
                return Err(mismatch(actual));
            }
            let size = data.len() as u64;
            self.put_verified(expected, data).await?;
            return Ok(size);
        };
        let mut parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|(etag, _)| PartId {
                content_id: etag.clone(),
            })
            .collect();
        let mut size: u64 = state.parts.iter().map(|(_, s)| s).sum();
        if !state.tails.is_empty() {
            // The last part may be small.
            let data: PutPayload = self.read_tails(&state).await?.into_iter().collect();
            size += data.content_length() as u64;
            parts.push(self.store.put_part(&path, &id, parts.len(), data).await?);
        }
        if path == target && hashed.is_none() {
            // Never made visible where the blob goes unverified.
            return Err(StorageError::Io(std::io::Error::other(
                "an upload written where the blob goes must come with its digest computed",
            )));
        }
        self.store.complete_multipart(&path, &id, parts).await?;
        // Nothing left to abort.
        match self
            .store
            .delete(&self.upload_key(upload, "multipart"))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if path == target {
            return Ok(size);
        }
        if hashed.is_none() {
            let mut hasher = Hasher::new(expected.algorithm());
            let mut stream = self.store.get(&path).await?.into_stream();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk?);
            }
            let actual = hasher.finish();
            if &actual != expected {
                let _ = self.store.delete(&path).await;
                return Err(mismatch(actual));
            }
        }
        self.copy(&path, &target, size).await?;
        Ok(size)
    }

    async fn discard_pieces(&self, upload: &str, pieces: &[String]) -> Result<()> {
        // Parts uploaded but not recorded are written again by the next
        // append (same part numbers) or dropped with the multipart upload.
        for piece in pieces {
            if let Some((name, _)) = piece.strip_prefix("tail:").and_then(|r| r.split_once(':')) {
                match self.store.delete(&self.upload_key(upload, name)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn delete_upload(&self, upload: &str) -> Result<()> {
        self.abort_marked(upload).await?;
        let locations = self
            .store
            .list(Some(&self.key(&format!("uploads/{upload}"))))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    async fn idle_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>> {
        let mut newest: HashMap<String, SystemTime> = HashMap::new();
        let uploads = self.key("uploads");
        let depth = uploads.parts().count();
        let mut objects = self.store.list(Some(&uploads));
        while let Some(meta) = objects.next().await.transpose()? {
            if let Some(id) = meta.location.parts().nth(depth) {
                let t: SystemTime = meta.last_modified.into();
                let e = newest.entry(id.as_ref().to_string()).or_insert(t);
                *e = (*e).max(t);
            }
        }
        Ok(newest
            .into_iter()
            .filter(|(_, t)| *t < cutoff)
            .map(|(id, _)| id)
            .collect())
    }

    async fn stale_staging(&self, _cutoff: SystemTime) -> Result<Vec<(String, u64)>> {
        // Objects are written whole and atomically: nothing is staged.
        Ok(Vec::new())
    }

    async fn delete_staging(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    async fn delete_blobs(&self, digests: &[Digest]) -> Result<()> {
        let paths: Vec<object_store::Result<Path>> =
            digests.iter().map(|d| Ok(self.blob_key(d))).collect();
        let mut deleted = self
            .store
            .delete_stream(futures::stream::iter(paths).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn presigned_get(&self, digest: &Digest, expiry: Duration) -> Result<Option<String>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(http::Method::GET, &self.blob_key(digest), expiry)
            .await?;
        Ok(Some(url.to_string()))
    }
}
