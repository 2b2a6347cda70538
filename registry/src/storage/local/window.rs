//! File windows: `Bytes` that are a range of a file, and that the API's
//! sockets send with sendfile(2) instead of copying.
//!
//! hyper writes response bodies as `Bytes` and knows nothing of files. A
//! window is a `Bytes` over a memory map of the range (not faulted in), and
//! it is registered here with its file and offset while it lives. The API's
//! socket wrapper (`http::stream::ApiStream`) looks up each buffer hyper hands
//! it: a registered window goes out with sendfile straight from the page
//! cache; anything else is written as usual. Whoever reads a window's bytes
//! instead (another wrapper, a test) reads the mapped file: the same bytes,
//! copied. Correctness never depends on the lookup, only the copy count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use bytes::Bytes;

/// A registered window: `len` bytes at `offset` of `file`.
struct Registered {
    len: usize,
    file: Arc<File>,
    offset: u64,
}

/// Live windows by the address of their first byte.
static WINDOWS: LazyLock<RwLock<BTreeMap<usize, Registered>>> = LazyLock::new(Default::default);
/// How many there are, so sockets skip the lock when none is live.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The owner behind a window's `Bytes`: the map, unregistered on drop
/// (before it is unmapped, so no address is ever looked up after reuse).
struct Window {
    start: usize,
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let mut windows = WINDOWS.write().unwrap_or_else(|p| p.into_inner());
        if windows.remove(&self.start).is_some() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// `len` bytes of `file` from `offset` as a window, read into the page
/// cache (blocks: call it off the async workers). `len` must be > 0.
pub fn map(file: &Arc<File>, offset: u64, len: usize) -> io::Result<Bytes> {
    // SAFETY: a mapped file must not shrink while mapped (touching pages
    // past its end raises SIGBUS). Blob files are written under another
    // name and renamed into place once complete; nothing truncates or
    // rewrites them after that, and deleting one (gc) unlinks it, which
    // leaves existing maps and open descriptors intact. A blob file cut
    // short by hand under a running registry is the remaining risk.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(&**file)?
    };
    // A range not all in the page cache is read in now, on the caller's
    // thread (the blocking pool): sendfile then finds it there instead of
    // blocking an async worker on the disk, which would stall every request
    // on that worker. A cached range is left unmapped: populating it would
    // only set up page tables that the unmap tears down again (a third of
    // a warm pull's CPU). Without MADV_POPULATE_READ (Linux < 5.14) the
    // send reads a cold range as before.
    if !cached(&map) {
        let _ = map.advise(memmap2::Advice::PopulateRead);
    }
    let start = map.as_ptr() as usize;
    let registered = Registered {
        len,
        file: file.clone(),
        offset,
    };
    WINDOWS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(start, registered);
    LIVE.fetch_add(1, Ordering::Relaxed);
    Ok(Bytes::from_owner(Window { start, map }))
}

/// Whether every page of `map` is in the page cache (mincore(2) reports
/// page-cache residency for a file mapping, without faulting anything in).
/// False when it cannot tell.
fn cached(map: &memmap2::Mmap) -> bool {
    // SAFETY: sysconf reads a constant of the system.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return false,
    };
    // The map starts where the window does; memmap2 mapped from the page
    // boundary below it.
    let at = map.as_ptr() as usize;
    let start = at - at % page;
    let len = map.len() + (at - start);
    let mut residency = vec![0u8; len.div_ceil(page)];
    // SAFETY: [start, start + len) lies in the live mapping behind `map`
    // (page-aligned), and `residency` holds one byte per page of it.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, residency.as_mut_ptr()) };
    rc == 0 && residency.iter().all(|r| r & 1 == 1)
}

/// The file range behind `len` bytes at `ptr`, if they start inside a live
/// window: (file, offset, bytes of the range within that window).
pub fn lookup(ptr: *const u8, len: usize) -> Option<(Arc<File>, u64, usize)> {
    if LIVE.load(Ordering::Relaxed) == 0 || len == 0 {
        return None;
    }
    let at = ptr as usize;
    let windows = WINDOWS.read().unwrap_or_else(|p| p.into_inner());
    let (start, w) = windows.range(..=at).next_back()?;
    let into = at - start;
    if into >= w.len {
        return None;
    }
    Some((
        w.file.clone(),
        w.offset + into as u64,
        len.min(w.len - into),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn windows_read_as_the_file_and_are_found_while_they_live() {
        let mut tmp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        tmp.write_all(&data).unwrap();
        let file = Arc::new(tmp);

        let window = map(&file, 5000, 30_000).unwrap();
        assert_eq!(&window[..], &data[5000..35_000]);
        let (_, offset, len) = lookup(window[100..].as_ptr(), 50_000).unwrap();
        assert_eq!((offset, len), (5100, 29_900));
        let heap = Box::new([0u8; 10]);
        assert!(lookup(heap.as_ptr(), 10).is_none());

        let ptr = window.as_ptr();
        drop(window);
        assert!(lookup(ptr, 1).is_none());
    }

    #[test]
    fn a_window_just_written_is_seen_cached_at_any_offset() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&vec![7u8; 1 << 20]).unwrap();
        // Offsets off a page boundary too (a Range request's window): the
        // residency check must cover the page the window starts in.
        for offset in [0u64, 5000, 4096 * 3 + 1] {
            // SAFETY: a private temporary file, never truncated.
            let m = unsafe {
                memmap2::MmapOptions::new()
                    .offset(offset)
                    .len(300_000)
                    .map(&tmp)
                    .unwrap()
            };
            assert!(cached(&m), "offset {offset}");
        }
    }
}
