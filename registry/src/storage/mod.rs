//! Blob bytes, content-addressed, behind one trait, [`BlobStore`], with one
//! file per backend: [`local`] (a directory, pulls by sendfile) and
//! [`object`] (an `object_store`: S3, opened by [`s3`], or memory). Every
//! backend passes the same test suite (`suite` below).
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
pub mod s3;

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

impl StorageError {
    /// Whether the store could not be reached or did not answer (refused
    /// connections, timeouts, 5xx after object_store's retries): the
    /// request may succeed later, so the HTTP layer answers 503. False for
    /// what retrying cannot fix: a missing object, refused credentials, a
    /// local I/O error, a digest that does not match.
    pub fn is_unavailable(&self) -> bool {
        use object_store::Error as E;
        matches!(self, Self::Store(E::Generic { .. } | E::JoinError { .. }))
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A stream of blob bytes, as served to clients.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A request body on its way into the store.
pub type BodyStream = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

/// Held by the one request that appends to or finishes an upload, while it
/// does (see [`BlobStore::lock_upload`]); released when dropped.
pub struct UploadLock(#[allow(dead_code)] Option<Box<dyn Send + Sync>>);

impl UploadLock {
    /// A lock that holds nothing: the store needs none.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn holding(guard: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(guard)))
    }
}

/// What [`BlobStore::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Where the store keeps the new bytes (store-specific names).
    pub pieces: Vec<String>,
    /// How many bytes came.
    pub size: u64,
}

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

    /// Appends `body` to upload `upload`, whose bytes so far are held by
    /// `pieces` (what earlier appends returned, in order), feeding every
    /// byte to `hasher`. `target`: the digest the bytes must have, when the
    /// caller knows it before they arrive (a store may then write them
    /// where the blob goes; they become visible only at `commit_upload`).
    /// Returns the pieces that now hold the new bytes (to be recorded after
    /// the earlier ones) and how many bytes came, once they are durable.
    /// Nothing is kept in memory beyond one write batch or part.
    async fn append(
        &self,
        upload: &str,
        pieces: &[String],
        target: Option<&Digest>,
        body: BodyStream,
        hasher: Option<&mut Hasher>,
    ) -> Result<Appended>;

    /// Makes an upload's bytes (its `pieces`) the blob `expected`, after
    /// checking the digest. `hashed` is the digest computed while they were
    /// written, if known for the algorithm of `expected`; otherwise they
    /// are read back and hashed. A mismatch leaves the upload as it was and
    /// nothing under `blobs/`. Returns the size of the committed blob.
    async fn commit_upload(
        &self,
        upload: &str,
        pieces: &[String],
        expected: &Digest,
        hashed: Option<Digest>,
    ) -> Result<u64>;

    /// Drops pieces an append returned that were never recorded (another
    /// request appended first, or the chunk was refused).
    async fn discard_pieces(&self, upload: &str, pieces: &[String]) -> Result<()>;

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

    /// Removes committed blobs (garbage collection); missing ones are fine.
    async fn delete_blobs(&self, digests: &[Digest]) -> Result<()>;

    /// Removes one committed blob.
    async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.delete_blobs(std::slice::from_ref(digest)).await
    }

    /// Whether the store answers (readiness): cheap, changes nothing.
    async fn ping(&self) -> Result<()>;

    /// Locks `upload` against other appends and commits until the lock is
    /// dropped; None if another request holds it. The caller reads the
    /// session after locking, so it appends where the session really ends.
    /// Stores whose appends never touch bytes another append wrote need
    /// none (the default).
    async fn lock_upload(&self, _upload: &str) -> Result<Option<UploadLock>> {
        Ok(Some(UploadLock::none()))
    }

    /// A URL a client may GET the blob from directly for `expiry`, when the
    /// store serves blobs that way (S3 with `redirect`); None otherwise.
    async fn presigned_get(&self, _digest: &Digest, _expiry: Duration) -> Result<Option<String>> {
        Ok(None)
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

    fn body_of(data: Vec<u8>) -> BodyStream {
        futures::stream::iter([Ok(Bytes::from(data))]).boxed()
    }

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

    /// Appends `chunks` one request each, commits, and checks what is read.
    async fn upload_in_chunks(store: &dyn BlobStore, upload: &str, chunks: &[&[u8]]) {
        let whole = chunks.concat();
        let mut h = Hasher::new(Algorithm::Sha256);
        let mut pieces = Vec::new();
        for chunk in chunks {
            let appended = store
                .append(upload, &pieces, None, body_of(chunk.to_vec()), Some(&mut h))
                .await
                .unwrap();
            assert_eq!(appended.size, chunk.len() as u64);
            pieces.extend(appended.pieces);
        }
        let want = Digest::of(Algorithm::Sha256, &whole);
        let got = store
            .commit_upload(upload, &pieces, &want, Some(h.finish()))
            .await;
        assert_eq!(got.unwrap(), whole.len() as u64);
        store.delete_upload(upload).await.unwrap();
        assert_eq!(read_all(store, &want, None).await, whole);
    }

    async fn run(store: &dyn BlobStore) {
        let data = b"hello world";
        let d = Digest::of(Algorithm::Sha256, data);
        assert_eq!(store.size(&d).await.unwrap(), None);

        // Two appends, committed by reading back.
        let mut h = Hasher::new(Algorithm::Sha256);
        let first = store.append("u1", &[], None, body(&[b"hello "]), Some(&mut h));
        let first = first.await.unwrap();
        assert_eq!(first.size, 6);
        let second = store.append(
            "u1",
            &first.pieces,
            None,
            body(&[b"wor", b"ld"]),
            Some(&mut h),
        );
        let second = second.await.unwrap();
        assert_eq!(second.size, 5);
        let pieces = [first.pieces, second.pieces].concat();
        let wrong = Digest::of(Algorithm::Sha256, b"other");
        assert!(matches!(
            store.commit_upload("u1", &pieces, &wrong, None).await,
            Err(StorageError::DigestMismatch { .. })
        ));
        assert_eq!(store.size(&wrong).await.unwrap(), None);
        assert_eq!(
            store.commit_upload("u1", &pieces, &d, None).await.unwrap(),
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

        // One append whose digest was known up front.
        let sha512 = Digest::of(Algorithm::Sha512, data);
        let mut h = Hasher::new(Algorithm::Sha512);
        let whole = store.append("u2", &[], Some(&sha512), body(&[data]), Some(&mut h));
        let whole = whole.await.unwrap();
        assert_eq!(
            store.size(&sha512).await.unwrap(),
            None,
            "visible before commit"
        );
        let hashed = h.finish();
        store
            .commit_upload("u2", &whole.pieces, &sha512, Some(hashed))
            .await
            .unwrap();
        store.delete_upload("u2").await.unwrap();
        assert_eq!(read_all(store, &sha512, None).await, data);

        // Discarded pieces are not committed.
        let x = Digest::of(Algorithm::Sha256, b"x");
        let lost = store
            .append("u3", &[], None, body(&[b"x"]), None)
            .await
            .unwrap();
        store.discard_pieces("u3", &lost.pieces).await.unwrap();
        assert!(
            store
                .commit_upload("u3", &lost.pieces, &x, None)
                .await
                .is_err()
        );
        assert_eq!(store.size(&x).await.unwrap(), None);
        store.delete_upload("u3").await.unwrap();

        // Many small appends, and one large: what S3's 5 MiB part minimum
        // makes a store gather before it writes a part.
        const MIB: usize = 1024 * 1024;
        let big: Vec<u8> = (0..13 * MIB + 7).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<&[u8]> = big[..3 * MIB]
            .chunks(300 * 1024)
            .chain([&big[3 * MIB..]])
            .collect();
        upload_in_chunks(store, "u4", &chunks).await;
        assert_eq!(
            read_all(
                store,
                &Digest::of(Algorithm::Sha256, &big),
                Some((5 * MIB - 3) as u64..(5 * MIB + 3) as u64)
            )
            .await,
            &big[5 * MIB - 3..5 * MIB + 3]
        );
        // Small appends that make a part between them, then leave some for
        // the last part.
        let mut chunks: Vec<&[u8]> = big[..7 * MIB].chunks(MIB).collect();
        chunks.push(&big[7 * MIB..7 * MIB + 100]);
        upload_in_chunks(store, "u5", &chunks).await;
        assert!(
            store.idle_uploads(later).await.unwrap().is_empty(),
            "an upload left data"
        );

        // Small verified blobs, written in one go.
        let small = Digest::of(Algorithm::Sha256, b"{}");
        store
            .put_verified(&small, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(read_all(store, &small, None).await, b"{}");
        assert!(store.stale_staging(later).await.unwrap().is_empty());

        store
            .delete_blobs(&[d.clone(), small.clone()])
            .await
            .unwrap();
        store.delete_blob(&d).await.unwrap();
        assert_eq!(store.size(&d).await.unwrap(), None);
        assert_eq!(store.size(&small).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory() {
        run(&ObjectBlobs::memory()).await;
    }

    /// The bucket of the PostgreSQL + S3 tests (versitygw), a prefix each.
    pub fn test_bucket() -> berth_config::S3Config {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: start the S3 server with `eval \"$(tests/backends/up.sh)\"` \
                     (bash .ci/run does)"
                )
            })
        };
        berth_config::S3Config {
            bucket: Some(var("BERTH_TEST_S3_BUCKET")),
            endpoint: Some(var("BERTH_TEST_S3_ENDPOINT")),
            prefix: Some(format!("suite-{}", uuid::Uuid::new_v4().simple())),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn s3() {
        run(&s3::open(&test_bucket()).await.unwrap()).await;
    }

    #[tokio::test]
    async fn s3_refuses_a_bucket_it_cannot_reach() {
        let config = berth_config::S3Config {
            bucket: Some("no-such-bucket".into()),
            ..test_bucket()
        };
        let e = s3::open(&config).await.err().expect("no such bucket");
        assert!(
            e.to_string().contains("bucket `no-such-bucket`"),
            "{}",
            crate::report::chain(&e)
        );
    }

    #[tokio::test]
    async fn local() {
        let dir = tempfile::tempdir().unwrap();
        run(&LocalStore::open(dir.path()).unwrap()).await;
    }
}
