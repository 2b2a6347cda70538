//! The file I/O of the local store: pulls and upload writes.
//!
//! Large reads are served as file windows (`crate::storage::local::window`): `Bytes`
//! that the API's sockets send with sendfile, straight from the page cache,
//! so a pull costs no copy through user space. Small reads are one `read`
//! into one buffer.
//!
//! Uploads are written in batches on the blocking pool while the next batch
//! arrives, and a background flush (fdatasync) starts every `FLUSH_EVERY`
//! bytes: the disk writes while the body still streams in, so the fsync
//! that ends every write finds little left to do.
//!
//! Everything that blocks (open, map, read-ahead hints, writes) runs on
//! tokio's blocking pool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::num::NonZeroU64;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use rustix::fs::Advice;

use super::window;
use crate::oci::digest::Hasher;
use crate::storage::{ByteStream, Result, StorageError};

/// Reads below this size are copied into one buffer; mapping is not worth it.
const SMALL_READ: u64 = 256 * 1024;
/// Bytes handed to hyper as one window.
const MAP_WINDOW: u64 = 4 * 1024 * 1024;
/// Body bytes gathered before one write.
const WRITE_BATCH: usize = 1024 * 1024;
/// Bytes written between background flushes.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
        .map_err(StorageError::from)
}

/// Opens the blob file at `path` and streams `range` of it (the whole file
/// without one; clamped to the file's size). None if there is no such file.
pub async fn read(path: PathBuf, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
    let opened = blocking(move || match File::open(&path) {
        Ok(file) => {
            let size = file.metadata()?.len();
            Ok(Some((file, size)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let Some((file, size)) = opened else {
        return Ok(None);
    };
    let range = match range {
        Some(r) => r.start.min(size)..r.end.min(size),
        None => 0..size,
    };
    Ok(Some(stream(file, range)))
}

/// Streams `range` of an open file.
pub fn stream(file: File, range: Range<u64>) -> ByteStream {
    let range = range.start.min(range.end)..range.end;
    if range.end - range.start < SMALL_READ {
        return stream::once(blocking(move || read_small(file, range))).boxed();
    }
    let file = Arc::new(file);
    stream::try_unfold((file, range), |(file, rest)| async move {
        if rest.is_empty() {
            return Ok(None);
        }
        let len = (rest.end - rest.start).min(MAP_WINDOW);
        let start = rest.start;
        let (file, window) = blocking(move || {
            // Ask the kernel to read this window and the next ahead, so
            // sendfile on a cold blob finds its pages (or soon will).
            let ahead = (rest.end - start).min(2 * MAP_WINDOW);
            let _ = rustix::fs::fadvise(&*file, start, NonZeroU64::new(ahead), Advice::WillNeed);
            let window = window::map(&file, start, len as usize)?;
            Ok((file, window))
        })
        .await?;
        Ok(Some((window, (file, start + len..rest.end))))
    })
    .boxed()
}

/// Writes `body` to a new file at `path` (creating its directory; the name
/// must be new), feeding `hasher`. Returns the bytes written once they are
/// on disk (fsynced on the descriptor that wrote them, so no write error can
/// go unseen). When an error is returned the file is removed; a request
/// dropped midway leaves it to the idle-upload sweep.
pub async fn write<S, E>(path: PathBuf, mut body: S, hasher: Option<&mut Hasher>) -> Result<u64>
where
    S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let create = path.clone();
    let file = blocking(move || {
        if let Some(dir) = create.parent() {
            std::fs::create_dir_all(dir)?;
        }
        File::options().write(true).create_new(true).open(&create)
    })
    .await?;
    let result = write_into(file, &mut body, hasher).await;
    if let Err(e) = &result {
        let _ = tokio::fs::remove_file(&path).await;
        if !matches!(e, StorageError::Body(_)) {
            crate::storage::drain(&mut body).await;
        }
    }
    result
}

/// Writes `body` into the file at `path` from byte `offset` on (creating
/// the file and its directory if there is none yet), feeding `hasher`.
/// Whatever the file holds from `offset` on is cut first: bytes an earlier
/// write left without being acknowledged. The file must hold `offset`
/// bytes already. Returns the bytes written once they are on disk.
pub async fn write_at<S, E>(
    path: PathBuf,
    offset: u64,
    mut body: S,
    hasher: Option<&mut Hasher>,
) -> Result<u64>
where
    S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let opened = blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        if len < offset {
            return Err(io::Error::other(format!(
                "{} holds {len} bytes, fewer than the {offset} acknowledged",
                path.display()
            )));
        }
        if len > offset {
            file.set_len(offset)?;
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    })
    .await;
    let file = match opened {
        Ok(file) => file,
        Err(e) => {
            crate::storage::drain(&mut body).await;
            return Err(e);
        }
    };
    let result = write_into(file, &mut body, hasher).await;
    if let Err(e) = &result
        && !matches!(e, StorageError::Body(_))
    {
        crate::storage::drain(&mut body).await;
    }
    result
}

/// Streams `body` into `file` at its position, in batches, and fsyncs.
async fn write_into<S, E>(file: File, body: &mut S, mut hasher: Option<&mut Hasher>) -> Result<u64>
where
    S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut writer = BatchWriter::new(Arc::new(file));
    let mut batch = Vec::new();
    let mut batched = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StorageError::Body(e.to_string()))?;
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&chunk);
        }
        batched += chunk.len();
        batch.push(chunk);
        if batched >= WRITE_BATCH {
            writer.write(std::mem::take(&mut batch), batched).await?;
            batched = 0;
        }
    }
    writer.write(batch, batched).await?;
    writer.finish().await
}

/// Holds an exclusive lock (flock) on the file at `path`, created if
/// missing, until dropped; None if another holds it.
pub async fn try_lock(path: PathBuf) -> Result<Option<File>> {
    blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(file)),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Hashes the first `len` bytes of the file at `path`.
pub async fn hash_prefix(path: PathBuf, len: u64, mut hasher: Hasher) -> Result<Hasher> {
    blocking(move || {
        let mut file = File::open(&path)?.take(len);
        let mut buf = vec![0u8; WRITE_BATCH];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher)
    })
    .await
}

/// Cuts the last `len` bytes off the file at `path` (none there: nothing).
pub async fn cut_last(path: PathBuf, len: u64) -> Result<()> {
    blocking(move || {
        let file = match File::options().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let size = file.metadata()?.len();
        file.set_len(size.saturating_sub(len))
    })
    .await
}

/// Cuts the file at `path` to `len` bytes and makes that durable; an
/// error if it holds fewer.
pub async fn truncate(path: PathBuf, len: u64) -> Result<()> {
    blocking(move || {
        let file = File::options().write(true).open(&path)?;
        let size = file.metadata()?.len();
        if size < len {
            // Never made up with zeros: the acknowledged bytes are gone.
            return Err(io::Error::other(format!(
                "{} holds {size} bytes, fewer than the {len} acknowledged",
                path.display()
            )));
        }
        if size > len {
            file.set_len(len)?;
        }
        file.sync_all()
    })
    .await
}

/// Writes batches in order, one in flight while the caller gathers the
/// next, and keeps one background flush going per `FLUSH_EVERY` bytes.
struct BatchWriter {
    file: Arc<File>,
    in_flight: Option<tokio::task::JoinHandle<io::Result<()>>>,
    flushing: Option<tokio::task::JoinHandle<io::Result<()>>>,
    written: u64,
    flushed_at: u64,
}

impl BatchWriter {
    fn new(file: Arc<File>) -> Self {
        Self {
            file,
            in_flight: None,
            flushing: None,
            written: 0,
            flushed_at: 0,
        }
    }

    async fn wait_in_flight(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            task.await.map_err(io::Error::other)??;
        }
        Ok(())
    }

    /// Waits for the background flush, if one runs, and reports its error:
    /// once a flush has seen a write error, a later fsync may not.
    async fn wait_flushing(&mut self) -> Result<()> {
        if let Some(task) = self.flushing.take() {
            task.await.map_err(io::Error::other)??;
        }
        Ok(())
    }

    async fn write(&mut self, batch: Vec<Bytes>, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.wait_in_flight().await?;
        let file = self.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let mut out = &*file;
            batch.iter().try_for_each(|chunk| out.write_all(chunk))
        }));
        self.written += len as u64;
        let idle = self.flushing.as_ref().is_none_or(|f| f.is_finished());
        if self.written - self.flushed_at >= FLUSH_EVERY && idle {
            // A head start for the disk, so the final fsync has little left.
            self.wait_flushing().await?;
            self.flushed_at = self.written;
            let file = self.file.clone();
            self.flushing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        }
        Ok(())
    }

    /// Waits for every write and flush, then fsyncs.
    async fn finish(mut self) -> Result<u64> {
        self.wait_in_flight().await?;
        self.wait_flushing().await?;
        let file = self.file.clone();
        blocking(move || file.sync_all()).await?;
        Ok(self.written)
    }
}

/// When anything in the upload directory `dir` was last written: the
/// directory's own time changes only when a part is added, while a long
/// streamed part is written to for as long as its body lasts.
pub async fn last_written(dir: PathBuf) -> Result<std::time::SystemTime> {
    blocking(move || {
        let mut newest = match std::fs::metadata(&dir) {
            Ok(meta) => meta.modified()?,
            // Removed meanwhile (the upload finished): not idle.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(std::time::SystemTime::now());
            }
            Err(e) => return Err(e),
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(std::time::SystemTime::now());
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            match entry.and_then(|e| e.metadata()) {
                Ok(meta) => newest = newest.max(meta.modified()?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(newest)
    })
    .await
}

fn read_small(mut file: File, range: Range<u64>) -> io::Result<Bytes> {
    file.seek(SeekFrom::Start(range.start))?;
    let mut buf = Vec::with_capacity((range.end - range.start) as usize);
    file.take(range.end - range.start).read_to_end(&mut buf)?;
    Ok(buf.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn collect(s: ByteStream) -> Vec<u8> {
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn writes_hash_every_byte_and_never_reuse_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload/part");
        let chunks: Vec<std::result::Result<Bytes, io::Error>> = (0..40u8)
            .map(|i| Ok(Bytes::from(vec![i; 100_000])))
            .collect();
        let expected: Vec<u8> = (0..40u8).flat_map(|i| vec![i; 100_000]).collect();
        let mut hasher = Hasher::new(crate::oci::digest::Algorithm::Sha256);
        let written = write(path.clone(), stream::iter(chunks), Some(&mut hasher))
            .await
            .unwrap();
        assert_eq!(written, expected.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(
            hasher.finish(),
            crate::oci::digest::Digest::of(crate::oci::digest::Algorithm::Sha256, &expected)
        );
        // A second write to the same name fails instead of truncating it.
        let again = stream::iter(vec![Ok::<_, io::Error>(Bytes::from_static(b"x"))]);
        assert!(write(path.clone(), again, None).await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn small_and_mapped_reads_match_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        // Not a multiple of the page size or the window, to test the edges.
        let data: Vec<u8> = (0..(MAP_WINDOW as usize * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();

        let all = read(path.clone(), None).await.unwrap().unwrap();
        assert_eq!(collect(all).await, data);
        for range in [
            0..10,
            4095..4097,
            5000..(MAP_WINDOW + 7000),
            100..data.len() as u64,
        ] {
            let got = read(path.clone(), Some(range.clone()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                collect(got).await,
                &data[range.start as usize..range.end as usize],
                "range {range:?}"
            );
        }
        let clamped = read(path.clone(), Some(10..u64::MAX))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(collect(clamped).await, &data[10..]);
        assert!(
            read(dir.path().join("missing"), None)
                .await
                .unwrap()
                .is_none()
        );
    }
}
