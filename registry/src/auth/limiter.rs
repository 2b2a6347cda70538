//! Rate limit on failed logins, per client address: after `max` failures
//! within `window`, further attempts from that address are refused until the
//! window has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            failures: Mutex::default(),
        }
    }

    /// Whether `client` may try to log in now.
    pub fn allows(&self, client: IpAddr) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return true;
        };
        match failures.get(&client) {
            Some((count, since)) => *count < self.max || since.elapsed() >= self.window,
            None => true,
        }
    }

    pub fn record_failure(&self, client: IpAddr) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() > 10_000 {
            let window = self.window;
            failures.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.allows(a));
            l.record_failure(a);
        }
        assert!(!l.allows(a));
        assert!(l.allows(b));
    }
}
