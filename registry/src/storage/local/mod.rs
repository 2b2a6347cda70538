//! Blobs in a directory on the local disk. Pulls of large blobs go out as
//! file windows (`window`) that the API's sockets send with sendfile; upload
//! bytes are written in batches with a background flush (`io`); every write
//! a client is told of is fsynced, and renames fsync their directories.
//!
//! An upload's chunks go one after another into one file,
//! `uploads/<id>/data`, each written at the offset the session has
//! acknowledged (anything after it, left by a write that failed, is cut
//! first); the pieces record each chunk's length (`data:<len>`). Finishing
//! is a rename, not a copy. Appends to one upload take turns through a
//! lock file (`uploads/<id>/lock`, flock: all processes on the host).
//! Sessions begun before this layout (a `part-…` file per chunk) are
//! finished by concatenating their parts, as they were.

mod io;
pub mod window;

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::{
    Appended, BlobStore, BodyStream, ByteStream, Result, StorageError, UploadLock, blob_path,
    part_path,
};
use crate::oci::digest::{Digest, Hasher};

/// Where small blobs are written before they are renamed into `blobs/`.
const STAGING: &str = "staging";
/// Bodies read into memory whole, and written in one go.
const WHOLE_BODY_LIMIT: usize = 1024 * 1024;
/// The file an upload's chunks go into, one after another.
const DATA: &str = "data";

/// The bytes recorded by `data:<len>` pieces; None if any piece is of the
/// older layout (a file per chunk).
fn data_len(pieces: &[String]) -> Option<u64> {
    pieces
        .iter()
        .map(|p| p.strip_prefix("data:").and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

pub struct LocalStore {
    root: PathBuf,
    /// Renames, deletes and stats through object_store, which fsyncs the
    /// directories a rename touches.
    fs: Arc<LocalFileSystem>,
}

impl LocalStore {
    /// Blobs under `root` (created if missing).
    pub fn open(root: &FsPath) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs = LocalFileSystem::new_with_prefix(root)?.with_fsync(true);
        Ok(Self {
            root: root.canonicalize()?,
            fs: Arc::new(fs),
        })
    }

    /// Blobs under an existing `root`, created by a registry before; None
    /// if there is none (maintenance commands never create a store).
    pub fn open_existing(root: &FsPath) -> Result<Option<Self>> {
        if !root.is_dir() {
            return Ok(None);
        }
        Self::open(root).map(Some)
    }

    fn file(&self, path: &Path) -> PathBuf {
        self.root.join(path.as_ref())
    }
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn ping(&self) -> Result<()> {
        tokio::fs::metadata(&self.root).await?;
        Ok(())
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.fs.head(&blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        io::read(self.file(&blob_path(digest)), range)
            .await?
            .ok_or_else(|| StorageError::BlobMissing(digest.clone()))
    }

    fn whole_body_limit(&self) -> usize {
        WHOLE_BODY_LIMIT
    }

    async fn put_verified(&self, digest: &Digest, data: Bytes) -> Result<()> {
        // Written under `staging/` and renamed into place, rather than
        // object_store's put, whose staging file next to the blob a crash
        // would leave where nothing ever looks (`blobs/…/<hex>#1`).
        let staged = Path::from(format!("{STAGING}/{}", uuid::Uuid::new_v4().simple()));
        let body = futures::stream::iter([Ok::<_, std::io::Error>(data)]);
        io::write(self.file(&staged), body, None).await?;
        if let Err(e) = self.fs.rename(&staged, &blob_path(digest)).await {
            let _ = tokio::fs::remove_file(self.file(&staged)).await;
            return Err(e.into());
        }
        Ok(())
    }

    async fn lock_upload(&self, upload: &str) -> Result<Option<UploadLock>> {
        let lock = io::try_lock(self.file(&part_path(upload, "lock"))).await?;
        Ok(lock.map(UploadLock::holding))
    }

    async fn append(
        &self,
        upload: &str,
        pieces: &[String],
        _target: Option<&Digest>,
        body: BodyStream,
        hasher: Option<&mut Hasher>,
    ) -> Result<Appended> {
        let Some(offset) = data_len(pieces) else {
            // A session of the older layout goes on as it began: a file per
            // append, its name never used twice.
            let part = format!("part-{}", uuid::Uuid::new_v4().simple());
            let size = io::write(self.file(&part_path(upload, &part)), body, hasher).await?;
            return Ok(Appended {
                pieces: vec![part],
                size,
            });
        };
        let data = self.file(&part_path(upload, DATA));
        let size = io::write_at(data, offset, body, hasher).await?;
        Ok(Appended {
            pieces: vec![format!("data:{size}")],
            size,
        })
    }

    async fn commit_upload(
        &self,
        upload: &str,
        pieces: &[String],
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
        let target = blob_path(expected);
        if let Some(size) = data_len(pieces).filter(|_| !pieces.is_empty()) {
            let data = part_path(upload, DATA);
            if hashed.is_none() {
                // No running hash (sha512, or a session without its
                // state): read the bytes once to check them.
                let hasher = Hasher::new(expected.algorithm());
                let actual = io::hash_prefix(self.file(&data), size, hasher)
                    .await?
                    .finish();
                if &actual != expected {
                    return Err(mismatch(&actual));
                }
            }
            // Bytes past the acknowledged end (a failed last write) are cut,
            // durably, before the file becomes the blob.
            io::truncate(self.file(&data), size).await?;
            self.fs.rename(&data, &target).await?;
            return Ok(size);
        }
        // The older layout: one part whose digest we know is a rename.
        // (Parts are durable once written; the rename fsyncs the blob's
        // directory.)
        if let ([part], Some(_)) = (pieces, hashed.as_ref()) {
            let from = part_path(upload, part);
            let size = self.fs.head(&from).await?.size;
            self.fs.rename(&from, &target).await?;
            return Ok(size);
        }
        // Otherwise concatenate into a new part while hashing, then rename.
        // Its own name: two commits of one session never share it.
        let assembled = format!("assembled-{}", uuid::Uuid::new_v4().simple());
        let mut hasher = Hasher::new(expected.algorithm());
        let files: Vec<PathBuf> = pieces
            .iter()
            .map(|p| self.file(&part_path(upload, p)))
            .collect();
        let body = futures::stream::iter(files)
            .then(|path| async move { tokio::fs::File::open(path).await })
            .map(|opened| {
                opened.map(|f| tokio_util::io::ReaderStream::with_capacity(f, 1024 * 1024))
            })
            .flat_map(|opened| match opened {
                Ok(reader) => reader.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed();
        let staging = part_path(upload, &assembled);
        let size = io::write(self.file(&staging), body, Some(&mut hasher)).await?;
        let actual = hasher.finish();
        if &actual != expected {
            let _ = tokio::fs::remove_file(self.file(&staging)).await;
            return Err(mismatch(&actual));
        }
        self.fs.rename(&staging, &target).await?;
        Ok(size)
    }

    async fn discard_pieces(&self, upload: &str, pieces: &[String]) -> Result<()> {
        // Chunks just written at the end of the data file (the caller holds
        // the upload's lock): cut them off again.
        let written: u64 = pieces
            .iter()
            .filter_map(|p| p.strip_prefix("data:")?.parse::<u64>().ok())
            .sum();
        if written > 0 {
            io::cut_last(self.file(&part_path(upload, DATA)), written).await?;
        }
        for part in pieces.iter().filter(|p| !p.starts_with("data:")) {
            match tokio::fs::remove_file(self.file(&part_path(upload, part))).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn delete_upload(&self, upload: &str) -> Result<()> {
        // Upload ids are UUIDs we generated; never a path of the client's.
        let dir = self.root.join("uploads").join(upload);
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn idle_uploads(&self, cutoff: SystemTime) -> Result<Vec<String>> {
        let mut idle = Vec::new();
        let mut dirs = match tokio::fs::read_dir(self.root.join("uploads")).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(idle),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = dirs.next_entry().await? {
            if io::last_written(entry.path()).await? < cutoff {
                idle.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(idle)
    }

    async fn stale_staging(&self, cutoff: SystemTime) -> Result<Vec<(String, u64)>> {
        let mut stale = Vec::new();
        let mut entries = match tokio::fs::read_dir(self.root.join(STAGING)).await {
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

    async fn delete_staging(&self, name: &str) -> Result<()> {
        // Names come from our own directory listing; never a client's path.
        match tokio::fs::remove_file(self.root.join(STAGING).join(name)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn delete_blobs(&self, digests: &[Digest]) -> Result<()> {
        for digest in digests {
            match self.fs.delete(&blob_path(digest)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;

    fn body(data: &'static [u8]) -> BodyStream {
        futures::stream::iter([Ok(Bytes::from_static(data))]).boxed()
    }

    /// A session begun by an older berth (a file per chunk) goes on and
    /// finishes in its own layout.
    #[tokio::test]
    async fn a_session_of_the_older_layout_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let uploads = dir.path().join("uploads/u");
        std::fs::create_dir_all(&uploads).unwrap();
        std::fs::write(uploads.join("part-a"), b"hello ").unwrap();
        let pieces = vec!["part-a".to_string()];
        let more = store
            .append("u", &pieces, None, body(b"world"), None)
            .await
            .unwrap();
        assert!(more.pieces[0].starts_with("part-"), "{:?}", more.pieces);
        let all = [pieces, more.pieces].concat();
        let d = Digest::of(Algorithm::Sha256, b"hello world");
        assert_eq!(store.commit_upload("u", &all, &d, None).await.unwrap(), 11);
        assert_eq!(
            std::fs::read(dir.path().join(blob_path(&d).as_ref())).unwrap(),
            b"hello world"
        );
    }

    /// Chunks go into one file; bytes a failed write left past the
    /// acknowledged end are cut by the next append and by the commit.
    #[tokio::test]
    async fn chunks_share_one_file_and_leftovers_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let first = store
            .append("u", &[], None, body(b"hello "), None)
            .await
            .unwrap();
        assert_eq!(first.pieces, ["data:6"]);
        let data = dir.path().join("uploads/u/data");
        // A write that failed midway left bytes nobody acknowledged.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .unwrap();
        std::io::Write::write_all(&mut f, b"GARBAGE").unwrap();
        let second = store
            .append("u", &first.pieces, None, body(b"wor"), None)
            .await
            .unwrap();
        let pieces = [first.pieces, second.pieces].concat();
        assert_eq!(std::fs::read(&data).unwrap(), b"hello wor");
        std::io::Write::write_all(&mut f, b"MORE").unwrap();
        let d = Digest::of(Algorithm::Sha256, b"hello wor");
        assert_eq!(
            store.commit_upload("u", &pieces, &d, None).await.unwrap(),
            9
        );
        assert_eq!(
            std::fs::read(dir.path().join(blob_path(&d).as_ref())).unwrap(),
            b"hello wor"
        );
        // A data file shorter than what was acknowledged is an error, not
        // zeros.
        let lost = ["data:100".to_string()];
        assert!(
            store
                .append("v", &lost, None, body(b"x"), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn one_request_at_a_time_holds_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let held = store.lock_upload("u").await.unwrap().expect("free");
        assert!(store.lock_upload("u").await.unwrap().is_none());
        assert!(store.lock_upload("other").await.unwrap().is_some());
        drop(held);
        assert!(store.lock_upload("u").await.unwrap().is_some());
    }
}
