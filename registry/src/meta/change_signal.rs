//! A value every process on one database changes after it commits a change
//! to tags or manifests, so in-process caches (see `manifest_cache`) know
//! when to drop what they hold (SQLite only: PostgreSQL keeps no manifest
//! cache, see `postgres`). Two sources:
//!
//! - A database file: 8 bytes in a file next to it, read with one `pread`
//!   per lookup (page cache, about a microsecond) instead of a query. It
//!   reaches the same processes SQLite's own WAL index reaches: those on one
//!   host (`berth serve` and the `berth gc` / `berth retention` jobs).
//!   Values are a random per-process prefix and a counter, so a write never
//!   puts back a value another process already read.
//! - In process only (in-memory databases).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What `current` returns when other processes' changes cannot be seen:
/// caches must not trust it (see `manifest_cache`).
pub const UNREADABLE: u64 = u64::MAX;

pub struct ChangeSignal {
    source: Source,
}

enum Source {
    File {
        file: File,
        /// The last value this process wrote.
        last: AtomicU64,
    },
    InProcess(AtomicU64),
}

impl ChangeSignal {
    /// A signal shared through the file at `path` (created if missing).
    /// `announce`: count starting up as a change (a server does: a process
    /// that died between its commit and its signal left caches stale).
    pub fn file(path: &Path, announce: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let signal = Self {
            source: Source::File {
                file,
                last: AtomicU64::new(process_base()),
            },
        };
        if announce {
            signal.changed();
        }
        Ok(signal)
    }

    /// A signal within this process only (in-memory databases).
    pub fn in_process() -> Self {
        Self {
            source: Source::InProcess(AtomicU64::new(1)),
        }
    }

    /// The current value; any change since an earlier read makes it differ.
    /// `UNREADABLE` if other processes' changes cannot be seen now.
    pub fn current(&self) -> u64 {
        match &self.source {
            Source::File { file, .. } => {
                let mut bytes = [0u8; 8];
                match file.read_at(&mut bytes, 0) {
                    Ok(8) => u64::from_le_bytes(bytes),
                    _ => UNREADABLE,
                }
            }
            Source::InProcess(value) => value.load(Ordering::Acquire),
        }
    }

    /// Announces a committed change. Call after the commit, never before:
    /// a reader that saw the old value then reads the new data, or misses.
    pub fn changed(&self) {
        match &self.source {
            Source::File { file, last } => {
                let value = last.fetch_add(1, Ordering::AcqRel) + 1;
                if let Err(e) = file.write_at(&value.to_le_bytes(), 0) {
                    // Caches elsewhere could serve a moved tag until their
                    // entries expire (manifest_cache::MAX_AGE); say so loudly.
                    tracing::error!(error = %e, "cannot write the metadata change signal");
                }
            }
            Source::InProcess(value) => {
                value.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// A prefix no other process uses (random; without entropy, the pid and
/// the clock), in the high 32 bits.
fn process_base() -> u64 {
    let mut bytes = [0u8; 4];
    let prefix = match getrandom::fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            std::process::id() ^ nanos
        }
    };
    u64::from(prefix) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_in_one_handle_shows_in_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changes");
        let a = ChangeSignal::file(&path, true).unwrap();
        let b = ChangeSignal::file(&path, true).unwrap();
        let seen = a.current();
        assert_eq!(seen, b.current());
        a.changed();
        assert_ne!(b.current(), seen);
        let seen = b.current();
        b.changed();
        assert_ne!(a.current(), seen);
    }

    #[test]
    fn in_process_signal_moves() {
        let s = ChangeSignal::in_process();
        let seen = s.current();
        s.changed();
        assert_ne!(s.current(), seen);
    }
}
