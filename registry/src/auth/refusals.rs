//! Bearer tokens refused for a missing scope, remembered per connection.
//!
//! The token flow answers a token that lacks a scope with 401
//! `error="insufficient_scope"` and a challenge naming the scope; clients
//! then fetch a new token. Some (oras-py) instead resend the same token on
//! the same connection and only fetch a new one after a 403. So the second
//! refusal of the same token for the same scope on the same connection is a
//! 403 with the same challenge (RFC 6750 gives insufficient_scope a 403).
//! Concurrent requests that carry the token on other connections still get
//! their first 401, which is all the other clients need.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a refusal is remembered (longer than any token lives).
const REMEMBER: Duration = Duration::from_secs(15 * 60);
/// Entries kept before old ones are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Refusals {
    seen: Mutex<HashMap<(u64, String, String), Instant>>,
}

impl Refusals {
    /// Records that `token` (its id) was refused `scope` on `connection`;
    /// true if it already had been.
    pub fn refused_again(&self, connection: u64, token: &str, scope: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > MAX_TRACKED {
            seen.retain(|_, at| at.elapsed() < REMEMBER);
        }
        seen.insert(
            (connection, token.to_string(), scope.to_string()),
            Instant::now(),
        )
        .is_some_and(|at| at.elapsed() < REMEMBER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_refusal_on_one_connection_is_a_repeat() {
        let r = Refusals::default();
        assert!(!r.refused_again(1, "jti", "repository:a:push"));
        assert!(
            !r.refused_again(2, "jti", "repository:a:push"),
            "another connection"
        );
        assert!(
            !r.refused_again(1, "jti", "repository:b:push"),
            "another scope"
        );
        assert!(r.refused_again(1, "jti", "repository:a:push"));
    }
}
