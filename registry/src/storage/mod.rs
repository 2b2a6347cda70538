//! Blob bytes, content-addressed, behind one trait, [`BlobStore`], with one
//! file per backend: [`local`] (a directory, pulls by sendfile) and
//! [`object`] (an `object_store`: memory today). Every backend passes the
//! same test suite (`suite` below).
//!
//! Layout inside a store:
//! - `blobs/<alg>/<first 2 hex>/<hex>`: committed blobs, deduplicated across repositories;
//! - `uploads/<session id>/<part>`: the chunks of an upload in progress;
//! - `staging/<random>`: a small blob being written (local disks), renamed
//!   into `blobs/` once durable.
//!
//! A blob only appears under `blobs/` after its digest was verified, by one
//! atomic rename (local filesystem) or copy (object stores). This module
//! knows nothing of HTTP or of repositories.

pub mod local;
pub mod object;

use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;

use crate::oci::digest::{Digest, Hasher};

pub use local::LocalStore;
pub use object::ObjectBlobs;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob storage")]
    Store(#[from] object_store::Error),
    #[error("blob storage I/O")]
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

/// A request body on its way into the store.
pub type BodyStream = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a committed blob, or None.
    async fn size(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Streams a committed blob, or the given byte range of it (clamped to
    /// the blob's size).
    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Bodies up to this size may be read into memory and stored with
    /// `put_verified`: no more than a streamed upload buffers anyway.
    fn whole_body_limit(&self) -> usize;

    /// Stores content the caller has hashed to `digest`, in one durable
    /// write (small uploads, and well-known blobs such as the empty JSON
    /// config that clients may not upload).
    async fn put_verified(&self, digest: &Digest, data: Bytes) -> Result<()>;

    /// Writes one chunk of an upload as its own object (`part` must be a
    /// name no other write of the upload uses), feeding every byte to
    /// `hasher`. Returns the number of bytes written, once they are durable.
    /// Nothing is kept in memory beyond one write batch.
    async fn write_part(
        &self,
        upload: &str,
        part: &str,
        body: BodyStream,
        hasher: Option<&mut Hasher>,
    ) -> Result<u64>;

    /// Makes an upload's parts the blob `expected`, after checking the
    /// digest. `hashed` is the digest computed while the parts were written,
    /// if known for the algorithm of `expected`; otherwise the parts are read
    /// back and hashed. A mismatch leaves the upload as it was and nothing
    /// under `blobs/`. Returns the size of the committed blob.
    async fn commit_upload(
        &self,
        upload: &str,
        parts: &[String],
        expected: &Digest,
        hashed: Option<Digest>,
    ) -> Result<u64>;

    /// Removes one part object of an upload.
    async fn delete_upload_part(&self, upload: &str, part: &str) -> Result<()>;

    /// Removes whatever an upload left in the store.
    async fn delete_upload(&self, upload: &str) -> Result<()>;

    /// Ids of uploads in the store not written to since `cutoff`. Upload
    /// data normally goes with its session; this finds what a crash left
    /// behind (a killed single-POST upload has no session at all).
    async fn idle_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>>;

    /// Staging files not written to since `cutoff`, with their sizes: bytes
    /// a crash left on their way into `blobs/` (stores that stage).
    async fn stale_staging(&self, cutoff: SystemTime) -> Result<Vec<(String, u64)>>;

    /// Removes a staging file [`BlobStore::stale_staging`] found.
    async fn delete_staging(&self, name: &str) -> Result<()>;

    /// Removes a committed blob (garbage collection).
    async fn delete_blob(&self, digest: &Digest) -> Result<()>;
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

/// Request body bytes read and dropped after a write failed, so that the
/// client, still sending, gets to read the error (a server that closes with
/// unread bytes resets the connection, and the answer is lost).
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

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

/// The suite every backend passes.
#[cfg(test)]
mod suite {
    use futures::TryStreamExt;

    use super::*;
    use crate::oci::digest::Algorithm;

    fn body(chunks: &[&'static [u8]]) -> BodyStream {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    async fn read_all(store: &dyn BlobStore, d: &Digest, range: Option<Range<u64>>) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .get(d, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    async fn run(store: &dyn BlobStore) {
        let data = b"hello world";
        let d = Digest::of(Algorithm::Sha256, data);
        assert_eq!(store.size(&d).await.unwrap(), None);

        // Two parts, committed by reading back.
        let mut h = Hasher::new(Algorithm::Sha256);
        let written = store.write_part("u1", "0", body(&[b"hello "]), Some(&mut h));
        assert_eq!(written.await.unwrap(), 6);
        let written = store.write_part("u1", "1", body(&[b"wor", b"ld"]), Some(&mut h));
        assert_eq!(written.await.unwrap(), 5);
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
        // Not written to since: idle; gone once deleted.
        let later = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(store.idle_uploads(later).await.unwrap(), vec!["u1"]);
        store.delete_upload("u1").await.unwrap();
        assert!(store.idle_uploads(later).await.unwrap().is_empty());
        assert_eq!(store.size(&d).await.unwrap(), Some(11));
        assert_eq!(read_all(store, &d, None).await, data);
        assert_eq!(read_all(store, &d, Some(6..11)).await, b"world");
        assert_eq!(read_all(store, &d, Some(6..100)).await, b"world");

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
        assert_eq!(read_all(store, &sha512, None).await, data);

        // A part that is deleted is not committed.
        store
            .write_part("u3", "0", body(&[b"x"]), None)
            .await
            .unwrap();
        store.delete_upload_part("u3", "0").await.unwrap();
        let x = Digest::of(Algorithm::Sha256, b"x");
        assert!(
            store
                .commit_upload("u3", &["0".into()], &x, None)
                .await
                .is_err()
        );
        store.delete_upload("u3").await.unwrap();

        // Small verified blobs, written in one go.
        let small = Digest::of(Algorithm::Sha256, b"{}");
        store
            .put_verified(&small, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(read_all(store, &small, None).await, b"{}");
        assert!(store.stale_staging(later).await.unwrap().is_empty());

        store.delete_blob(&d).await.unwrap();
        store.delete_blob(&d).await.unwrap();
        assert_eq!(store.size(&d).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory() {
        run(&ObjectBlobs::memory()).await;
    }

    #[tokio::test]
    async fn local() {
        let dir = tempfile::tempdir().unwrap();
        run(&LocalStore::open(dir.path()).unwrap()).await;
    }
}
