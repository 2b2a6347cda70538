//! In-process cache of manifest lookups (the SQLite store's). Pulls read
//! the same few tags far more often than anyone writes them; a hit costs a
//! lock and a read of the change signal (a `pread` of the signal file)
//! instead of a database query.
//!
//! Correctness rests on the change signal: every commit that changes tags or
//! manifests changes it afterwards, in whichever process committed. A lookup
//! reads the signal first; entries filled under another value are dropped.
//! A filler records the value it read *before* its query, so a change that
//! lands during the query makes its entry stale at once. Entries also expire
//! after `MAX_AGE`, which bounds the damage of a process that died between
//! its commit and its signal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::change_signal::{ChangeSignal, UNREADABLE};
use super::{ManifestRecord, Reference};

/// How long an entry is trusted at most.
const MAX_AGE: Duration = Duration::from_secs(5);
/// Bytes of manifest content held at most (a manifest is at most 4 MiB).
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// `(repository, reference)`; digests keep their `alg:` prefix, which no tag has.
type Key = (String, String);

struct Entry {
    record: ManifestRecord,
    filled: Instant,
}

struct State {
    /// The signal value the entries were filled under.
    generation: u64,
    entries: HashMap<Key, Entry>,
    bytes: usize,
}

pub struct ManifestCache {
    signal: ChangeSignal,
    state: Mutex<State>,
}

/// What a miss hands to the filler: the signal value read before the query.
#[derive(Debug)]
pub struct Ticket(u64);

fn key(repo: &str, reference: Reference<'_>) -> Key {
    let reference = match reference {
        Reference::Tag(t) => t.to_string(),
        Reference::Digest(d) => d.to_string(),
    };
    (repo.to_string(), reference)
}

impl ManifestCache {
    pub fn new(signal: ChangeSignal) -> Self {
        Self {
            state: Mutex::new(State {
                generation: signal.current(),
                entries: HashMap::new(),
                bytes: 0,
            }),
            signal,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a cache: after a panic elsewhere, empty it and go on.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            state.entries.clear();
            state.bytes = 0;
            state
        })
    }

    /// The cached record, or a ticket to fill it with after querying.
    pub fn get(&self, repo: &str, reference: Reference<'_>) -> Result<ManifestRecord, Ticket> {
        let generation = self.signal.current();
        if generation == UNREADABLE {
            // Other processes' changes cannot be seen: no cache at all.
            return Err(Ticket(generation));
        }
        let mut state = self.lock();
        if state.generation != generation {
            state.entries.clear();
            state.bytes = 0;
            state.generation = generation;
            return Err(Ticket(generation));
        }
        match state.entries.get(&key(repo, reference)) {
            Some(e) if e.filled.elapsed() < MAX_AGE => Ok(e.record.clone()),
            _ => Err(Ticket(generation)),
        }
    }

    /// Keeps what a query returned, unless something changed since the ticket.
    pub fn fill(
        &self,
        ticket: Ticket,
        repo: &str,
        reference: Reference<'_>,
        record: &ManifestRecord,
    ) {
        let size = record.content.len();
        if ticket.0 == UNREADABLE {
            return;
        }
        let mut state = self.lock();
        if state.generation != ticket.0 || self.signal.current() != ticket.0 {
            return;
        }
        if state.bytes + size > MAX_BYTES {
            state.entries.clear();
            state.bytes = 0;
        }
        let entry = Entry {
            record: record.clone(),
            filled: Instant::now(),
        };
        if let Some(old) = state.entries.insert(key(repo, reference), entry) {
            state.bytes -= old.record.content.len();
        }
        state.bytes += size;
    }

    /// After committing a change to tags or manifests.
    pub fn changed(&self) {
        self.signal.changed();
        let mut state = self.lock();
        state.entries.clear();
        state.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(digest: &str) -> ManifestRecord {
        ManifestRecord {
            digest: digest.into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: bytes::Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn hit_after_fill_and_miss_after_change() {
        let cache = ManifestCache::new(ChangeSignal::in_process());
        let tag = Reference::Tag("latest");
        let ticket = cache.get("a", tag).unwrap_err();
        cache.fill(ticket, "a", tag, &record("sha256:1"));
        assert_eq!(cache.get("a", tag).unwrap().digest, "sha256:1");
        assert!(cache.get("b", tag).is_err());
        cache.changed();
        assert!(cache.get("a", tag).is_err());
    }

    #[test]
    fn a_change_during_the_query_keeps_the_result_out() {
        let cache = ManifestCache::new(ChangeSignal::in_process());
        let tag = Reference::Tag("latest");
        let ticket = cache.get("a", tag).unwrap_err();
        cache.changed(); // committed while the query ran
        cache.fill(ticket, "a", tag, &record("sha256:old"));
        assert!(cache.get("a", tag).is_err());
    }

    #[test]
    fn another_process_change_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changes");
        let cache = ManifestCache::new(ChangeSignal::file(&path, true).unwrap());
        let other = ChangeSignal::file(&path, true).unwrap();
        let tag = Reference::Tag("v1");
        let ticket = cache.get("a", tag).unwrap_err();
        cache.fill(ticket, "a", tag, &record("sha256:1"));
        assert!(cache.get("a", tag).is_ok());
        other.changed();
        assert!(cache.get("a", tag).is_err());

        // A signal that cannot be read turns the cache off, fills included.
        std::fs::File::create(&path).unwrap(); // truncated: reads short
        let ticket = cache.get("a", tag).unwrap_err();
        cache.fill(ticket, "a", tag, &record("sha256:1"));
        assert!(cache.get("a", tag).is_err());
    }
}
