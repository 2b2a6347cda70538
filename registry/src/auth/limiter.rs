//! Rate limit on failed logins, per (client address, user name): after
//! `max` failures within `window`, further attempts at that user from that
//! address are refused until the window has passed. Keying on the user too
//! means a shared address (a NAT, an ingress) does not lock everyone out
//! when one account is attacked; a success clears the user's count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are dropped.
const MAX_TRACKED: usize = 10_000;

pub struct FailureLimiter {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<(IpAddr, String), (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            failures: Mutex::default(),
        }
    }

    /// Ok if `user` may try to log in from `client` now; else how long
    /// until it may.
    pub fn check(&self, client: IpAddr, user: &str) -> Result<(), Duration> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        match failures.get(&(client, user.to_string())) {
            Some((count, since)) if *count >= self.max => {
                let elapsed = since.elapsed();
                if elapsed >= self.window {
                    Ok(())
                } else {
                    Err(self.window - elapsed)
                }
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, client: IpAddr, user: &str) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() > MAX_TRACKED {
            let window = self.window;
            failures.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = failures
            .entry((client, user.to_string()))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// A correct login: its earlier failures no longer count.
    pub fn record_success(&self, client: IpAddr, user: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&(client, user.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_one_user_from_one_address() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a, "alice").is_ok());
            l.record_failure(a, "alice");
        }
        let wait = l.check(a, "alice").unwrap_err();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        // Another user behind the same address, and the same user elsewhere.
        assert!(l.check(a, "bob").is_ok());
        assert!(l.check(b, "alice").is_ok());
        // Success clears the count.
        l.record_failure(b, "alice");
        l.record_success(b, "alice");
        for _ in 0..2 {
            l.record_failure(b, "alice");
        }
        assert!(l.check(b, "alice").is_ok());
    }
}
