//! Blob bytes, content-addressed, over `object_store`.
//!
//! Layout inside the store:
//! - `blobs/<alg>/<first 2 hex>/<hex>`: committed blobs, deduplicated across repositories;
//! - `uploads/<session id>/<part>`: the chunks of an upload in progress;
//! - `staging/<random>`: a small blob being written (local disks), renamed
//!   into `blobs/` once durable.
//!
//! A blob only appears under `blobs/` after its digest was verified, by one
//! atomic rename (local filesystem) or copy (object stores). This module
//! knows nothing of HTTP or of repositories.

mod local;

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};

use crate::digest::{Digest, Hasher};

/// Where small blobs are written before they are renamed into `blobs/`
/// (local disks only).
const STAGING: &str = "staging";
/// Parts of a multipart write in flight at once; with the part size, this
/// bounds the memory one upload holds.
const WRITE_CONCURRENCY: usize = 2;
/// Part size on local disks; object stores need at least 5 MiB (S3).
const LOCAL_PART_SIZE: usize = 1024 * 1024;
const REMOTE_PART_SIZE: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("blob storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("request body: {0}")]
    Body(String),
    #[error("blob {0} is not in storage")]
    BlobMissing(Digest),
    #[error("content does not match digest {expected} (computed {actual})")]
    DigestMismatch { expected: Digest, actual: Digest },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A stream of blob bytes, as served to clients.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Request body bytes read and dropped after a write failed, so that the
/// client, still sending, gets to read the error (a server that closes with
/// unread bytes resets the connection, and the answer is lost).
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards what is left of `body`, up to the drain limits.
async fn drain<S, E>(body: &mut S)
where
    S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = body.next().await {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Where upload parts are read, listed and deleted: the same store, but
    /// on a local disk without object_store's fsyncs of staging files and
    /// directories (parts there are written by `local::write`, which fsyncs
    /// each part once, on the descriptor that wrote it).
    uploads: Arc<dyn ObjectStore>,
    /// The directory behind a local filesystem store: object_store leaves
    /// empty directories and the staging files of interrupted writes behind,
    /// which upload cleanup removes here.
    local_root: Option<std::path::PathBuf>,
    part_size: usize,
}

impl BlobStore {
    /// Blobs in a directory on the local filesystem, fsynced before a write is acknowledged.
    pub fn local(root: &FsPath) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs = LocalFileSystem::new_with_prefix(root)?.with_fsync(true);
        let scratch = LocalFileSystem::new_with_prefix(root)?;
        Ok(Self {
            store: Arc::new(fs),
            uploads: Arc::new(scratch),
            local_root: Some(root.canonicalize()?),
            part_size: LOCAL_PART_SIZE,
        })
    }

    /// Blobs in memory (tests, throw-away registries).
    pub fn memory() -> Self {
        Self::new(Arc::new(InMemory::new()))
    }

    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            uploads: store.clone(),
            store,
            local_root: None,
            part_size: REMOTE_PART_SIZE,
        }
    }

    fn blob_path(digest: &Digest) -> Path {
        let hex = digest.hex();
        Path::from(format!(
            "blobs/{}/{}/{}",
            digest.algorithm().as_str(),
            &hex[..2],
            hex
        ))
    }

    fn upload_dir(upload: &str) -> Path {
        Path::from(format!("uploads/{upload}"))
    }

    fn part_path(upload: &str, part: &str) -> Path {
        Path::from(format!("uploads/{upload}/{part}"))
    }

    /// Size of a committed blob, or None.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.store.head(&Self::blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams a committed blob, or the given byte range of it (clamped to
    /// the blob's size).
    pub async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        if let Some(root) = &self.local_root {
            let path = root.join(Self::blob_path(digest).as_ref());
            return local::read(path, range)
                .await?
                .ok_or_else(|| StorageError::BlobMissing(digest.clone()));
        }
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&Self::blob_path(digest), options)
            .await?;
        match result.payload {
            GetResultPayload::File(file, _) => Ok(local::stream(file, result.range)),
            GetResultPayload::Stream(s) => Ok(s.map_err(StorageError::from).boxed()),
        }
    }

    /// Bodies up to this size may be read into memory and stored with
    /// `put_verified`: no more than a streamed upload buffers anyway.
    pub fn whole_body_limit(&self) -> usize {
        self.part_size
    }

    /// Stores content the caller has hashed to `digest`, in one durable
    /// write (small uploads, and well-known blobs such as the empty JSON
    /// config that clients may not upload).
    pub async fn put_verified(&self, digest: &Digest, data: Bytes) -> Result<()> {
        let target = Self::blob_path(digest);
        let Some(root) = &self.local_root else {
            self.store.put(&target, PutPayload::from(data)).await?;
            return Ok(());
        };
        // Written under `staging/` and renamed into place, rather than
        // object_store's put, whose staging file next to the blob a crash
        // would leave where nothing ever looks (`blobs/…/<hex>#1`).
        let staged = Path::from(format!("{STAGING}/{}", uuid::Uuid::new_v4().simple()));
        let body = futures::stream::iter([Ok::<_, std::io::Error>(data)]);
        local::write(root.join(staged.as_ref()), body, None).await?;
        if let Err(e) = self.store.rename(&staged, &target).await {
            let _ = tokio::fs::remove_file(root.join(staged.as_ref())).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Staging files not written to since `cutoff`: bytes a crash left on
    /// their way into `blobs/` (a live write renames its file within
    /// moments). Returns their names and sizes.
    pub async fn stale_staging(&self, cutoff: std::time::SystemTime) -> Result<Vec<(String, u64)>> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let mut stale = Vec::new();
        let mut entries = match tokio::fs::read_dir(root.join(STAGING)).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stale),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = entries.next_entry().await? {
            let meta = match entry.metadata().await {
                Ok(meta) => meta,
                // Renamed into place meanwhile: a live write, not a leftover.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if meta.modified()? < cutoff {
                stale.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
            }
        }
        Ok(stale)
    }

    /// Removes a staging file [`stale_staging`](Self::stale_staging) found.
    pub async fn delete_staging(&self, name: &str) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        // Names come from our own directory listing; never a client's path.
        match tokio::fs::remove_file(root.join(STAGING).join(name)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Writes one chunk of an upload as its own object (`part` must be a
    /// name no other write of the upload uses), feeding every byte to
    /// `hasher`. Returns the number of bytes written, once they are durable.
    /// Nothing is kept in memory beyond one write batch.
    pub async fn write_part<S, E>(
        &self,
        upload: &str,
        part: &str,
        body: S,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<u64>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if let Some(root) = &self.local_root {
            let path = root.join(Self::part_path(upload, part).as_ref());
            return local::write(path, body, hasher).await;
        }
        let multipart = self
            .uploads
            .put_multipart(&Self::part_path(upload, part))
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(multipart, self.part_size);
        let mut body = body;
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Body(e.to_string()));
                }
            };
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&chunk);
            }
            written += chunk.len() as u64;
            if let Err(e) = writer.wait_for_capacity(WRITE_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        Ok(written)
    }

    /// Streams the parts of an upload in order, e.g. to hash them again.
    fn parts_stream(&self, upload: &str, parts: &[String]) -> ByteStream {
        let store = self.uploads.clone();
        let paths: Vec<Path> = parts.iter().map(|p| Self::part_path(upload, p)).collect();
        futures::stream::iter(paths)
            .then(move |path| {
                let store = store.clone();
                async move { store.get(&path).await.map(|r| r.into_stream()) }
            })
            .try_flatten()
            .map_err(StorageError::from)
            .boxed()
    }

    /// Makes an upload's bytes the blob `expected`, after checking the digest.
    ///
    /// `hashed` is the digest computed while the parts were written, if it is
    /// known for the algorithm of `expected`; otherwise the parts are read
    /// back and hashed. A mismatch leaves the upload as it was and nothing
    /// under `blobs/`. Returns the size of the committed blob.
    pub async fn commit_upload(
        &self,
        upload: &str,
        parts: &[String],
        expected: &Digest,
        hashed: Option<Digest>,
    ) -> Result<u64> {
        let mismatch = |actual: &Digest| StorageError::DigestMismatch {
            expected: expected.clone(),
            actual: actual.clone(),
        };
        if let Some(actual) = hashed.as_ref().filter(|a| *a != expected) {
            return Err(mismatch(actual));
        }
        let target = Self::blob_path(expected);
        // One part whose digest we know: a rename, no copy.
        // (Parts are durable once written; the rename of the blob store
        // fsyncs the blob's directory.)
        if let ([part], Some(_)) = (parts, hashed.as_ref()) {
            let from = Self::part_path(upload, part);
            let size = self.uploads.head(&from).await?.size;
            self.store.rename(&from, &target).await?;
            return Ok(size);
        }
        // Otherwise concatenate into a staging object while hashing, then
        // rename. Its own name: two commits of one session never share it.
        let assembled = format!("assembled-{}", uuid::Uuid::new_v4().simple());
        let staging = Self::part_path(upload, &assembled);
        let mut hasher = Hasher::new(expected.algorithm());
        let size = self
            .write_part(
                upload,
                &assembled,
                self.parts_stream(upload, parts),
                Some(&mut hasher),
            )
            .await?;
        let actual = hasher.finish();
        if &actual != expected {
            let _ = self.uploads.delete(&staging).await;
            return Err(mismatch(&actual));
        }
        self.store.rename(&staging, &target).await?;
        Ok(size)
    }

    /// Removes one part object of an upload.
    pub async fn delete_upload_part(&self, upload: &str, part: &str) -> Result<()> {
        match self.uploads.delete(&Self::part_path(upload, part)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ids of upload directories in the store not written to since `cutoff`.
    /// Upload data normally goes with its session; this finds what a crash
    /// left behind (a killed single-POST upload has no session at all).
    pub async fn idle_uploads(&self, cutoff: std::time::SystemTime) -> Result<Vec<String>> {
        let mut idle = Vec::new();
        if let Some(root) = &self.local_root {
            // Read the directory itself: it also sees the staging files of
            // interrupted writes, which object_store's listing hides.
            let mut dirs = match tokio::fs::read_dir(root.join("uploads")).await {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(idle),
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = dirs.next_entry().await? {
                if local::last_written(entry.path()).await? < cutoff {
                    idle.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            return Ok(idle);
        }
        let mut newest: std::collections::HashMap<String, std::time::SystemTime> =
            Default::default();
        let mut objects = self.uploads.list(Some(&Path::from("uploads")));
        while let Some(meta) = objects.next().await.transpose()? {
            if let Some(id) = meta.location.parts().nth(1) {
                let t: std::time::SystemTime = meta.last_modified.into();
                let e = newest.entry(id.as_ref().to_string()).or_insert(t);
                *e = (*e).max(t);
            }
        }
        idle.extend(
            newest
                .into_iter()
                .filter(|(_, t)| *t < cutoff)
                .map(|(id, _)| id),
        );
        Ok(idle)
    }

    /// Removes whatever an upload left in the store.
    pub async fn delete_upload(&self, upload: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            // Upload ids are UUIDs we generated; never a path of the client's.
            let dir = root.join("uploads").join(upload);
            return match tokio::fs::remove_dir_all(&dir).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        let prefix = Self::upload_dir(upload);
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Removes a committed blob (garbage collection).
    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        match self.store.delete(&Self::blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    fn body(
        chunks: &[&'static [u8]],
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
    }

    async fn read_all(store: &BlobStore, d: &Digest, range: Option<Range<u64>>) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .get(d, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    async fn suite(store: BlobStore) {
        let data = b"hello world";
        let d = Digest::of(Algorithm::Sha256, data);
        assert_eq!(store.size(&d).await.unwrap(), None);

        // Two parts, committed by reading back.
        let mut h = Hasher::new(Algorithm::Sha256);
        assert_eq!(
            store
                .write_part("u1", "0", body(&[b"hello "]), Some(&mut h))
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            store
                .write_part("u1", "1", body(&[b"wor", b"ld"]), Some(&mut h))
                .await
                .unwrap(),
            5
        );
        let wrong = Digest::of(Algorithm::Sha256, b"other");
        let parts = vec!["0".to_string(), "1".to_string()];
        assert!(matches!(
            store.commit_upload("u1", &parts, &wrong, None).await,
            Err(StorageError::DigestMismatch { .. })
        ));
        assert_eq!(store.size(&wrong).await.unwrap(), None);
        assert_eq!(
            store.commit_upload("u1", &parts, &d, None).await.unwrap(),
            11
        );
        store.delete_upload("u1").await.unwrap();
        assert_eq!(store.size(&d).await.unwrap(), Some(11));
        assert_eq!(read_all(&store, &d, None).await, data);
        assert_eq!(read_all(&store, &d, Some(6..11)).await, b"world");

        // One part with a known digest: renamed.
        let sha512 = Digest::of(Algorithm::Sha512, data);
        let mut h = Hasher::new(Algorithm::Sha512);
        store
            .write_part("u2", "0", body(&[data]), Some(&mut h))
            .await
            .unwrap();
        let hashed = h.finish();
        store
            .commit_upload("u2", &["0".into()], &sha512, Some(hashed))
            .await
            .unwrap();
        assert_eq!(read_all(&store, &sha512, None).await, data);

        store.delete_blob(&d).await.unwrap();
        assert_eq!(store.size(&d).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_backend() {
        suite(BlobStore::memory()).await;
    }

    #[tokio::test]
    async fn local_backend() {
        let dir = tempfile::tempdir().unwrap();
        suite(BlobStore::local(dir.path()).unwrap()).await;
    }
}
