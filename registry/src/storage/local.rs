//! Reading blobs off a local disk for pulls.
//!
//! Large reads are served as windows of a memory map: each window becomes
//! one `Bytes` that hyper writes to the socket straight from the page cache,
//! so a pull costs one copy (page cache to socket) instead of three (read
//! into a buffer, copy into the body chunk, write). Small reads are one
//! `read` into one buffer. The blocking parts (open, map, fault the pages
//! in) run on tokio's blocking pool, so a cold blob never stalls a worker.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::{ByteStream, Result, StorageError};

/// Reads below this size are copied into one buffer; mapping is not worth it.
const SMALL_READ: u64 = 256 * 1024;
/// Bytes mapped, faulted in and handed to hyper at a time.
const MAP_WINDOW: u64 = 4 * 1024 * 1024;

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
    stream::try_unfold((file, range), |(file, rest)| async move {
        if rest.is_empty() {
            return Ok(None);
        }
        let len = (rest.end - rest.start).min(MAP_WINDOW);
        let start = rest.start;
        let (file, window) = blocking(move || {
            let window = map_window(&file, start, len)?;
            Ok((file, window))
        })
        .await?;
        Ok(Some((window, (file, start + len..rest.end))))
    })
    .boxed()
}

fn read_small(mut file: File, range: Range<u64>) -> io::Result<Bytes> {
    file.seek(SeekFrom::Start(range.start))?;
    let mut buf = Vec::with_capacity((range.end - range.start) as usize);
    file.take(range.end - range.start).read_to_end(&mut buf)?;
    Ok(buf.into())
}

/// `len` bytes of `file` from `offset`, mapped and faulted in.
fn map_window(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: a mapped file must not shrink while mapped (reads past its end
    // raise SIGBUS). Blob files are written under another name and renamed
    // into place once complete; nothing truncates or rewrites them after
    // that, and deleting one (gc) unlinks it, which leaves existing maps
    // intact. A file cut short by hand under a running registry is the
    // remaining risk, the same one any mmap-serving server (nginx with
    // sendfile aside) accepts.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map(file)?
    };
    Ok(Bytes::from_owner(map))
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
