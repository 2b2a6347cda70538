//! One fetch at a time per key (a tag, a digest) in this process: the
//! first request leads, the others wait until it is done and then find
//! what it stored. (Across processes, the leader also claims the key in the
//! metadata store; see `service::mirrored`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

type Map = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

#[derive(Default)]
pub struct Flights {
    map: Map,
}

/// What a request does about a key.
pub enum Turn {
    /// Fetch it; others wait until this is dropped.
    Lead(Leader),
    /// Wait until the leader is done (then look again).
    Follow(Arc<tokio::sync::Mutex<()>>),
}

/// The fetch of one key in this process.
pub struct Leader {
    key: String,
    map: Map,
    _held: OwnedMutexGuard<()>,
}

impl Flights {
    pub fn turn(&self, key: &str) -> Turn {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = map.get(key) {
            return Turn::Follow(flight.clone());
        }
        let flight = Arc::new(tokio::sync::Mutex::new(()));
        let held = flight.clone().try_lock_owned().expect("a new lock is free");
        map.insert(key.to_string(), flight);
        Turn::Lead(Leader {
            key: key.to_string(),
            map: self.map.clone(),
            _held: held,
        })
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Out of the map first: a request coming now leads a new fetch (or
        // finds what this one stored) instead of waiting on a finished one.
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl Turn {
    /// For a follower: waits until the leader is done.
    pub async fn wait(flight: &Arc<tokio::sync::Mutex<()>>) {
        let _ = flight.lock().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leads_the_others_wait_for_it() {
        let flights = Flights::default();
        let Turn::Lead(leader) = flights.turn("k") else {
            panic!("the first one leads");
        };
        let Turn::Follow(flight) = flights.turn("k") else {
            panic!("the second one follows");
        };
        assert!(matches!(flights.turn("other"), Turn::Lead(_)));
        let waiting = tokio::spawn(async move { Turn::wait(&flight).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a follower waits for the leader");
        drop(leader);
        waiting.await.unwrap();
        assert!(
            matches!(flights.turn("k"), Turn::Lead(_)),
            "done: the next one leads"
        );
    }
}
