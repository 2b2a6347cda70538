//! Blobs in a directory on the local disk. Pulls of large blobs go out as
//! file windows (`window`) that the API's sockets send with sendfile; upload
//! parts are written in batches with a background flush (`io`); every write
//! a client is told of is fsynced, and renames fsync their directories.

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
    Appended, BlobStore, BodyStream, ByteStream, Result, StorageError, blob_path, part_path,
};
use crate::oci::digest::{Digest, Hasher};

/// Where small blobs are written before they are renamed into `blobs/`.
const STAGING: &str = "staging";
/// Bodies read into memory whole, and written in one go.
const WHOLE_BODY_LIMIT: usize = 1024 * 1024;

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

    async fn append(
        &self,
        upload: &str,
        _pieces: &[String],
        _target: Option<&Digest>,
        body: BodyStream,
        hasher: Option<&mut Hasher>,
    ) -> Result<Appended> {
        // A file per append, its name never used twice.
        let part = format!("part-{}", uuid::Uuid::new_v4().simple());
        let size = io::write(self.file(&part_path(upload, &part)), body, hasher).await?;
        Ok(Appended {
            pieces: vec![part],
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
        // One part whose digest we know: a rename, no copy. (Parts are
        // durable once written; the rename fsyncs the blob's directory.)
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
        for part in pieces {
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
