//! Request ids for `x-request-id` when the client sends none.
//!
//! A random per-process prefix and a counter: unique across processes and
//! restarts in practice, and without the `getrandom` system call a v4 UUID
//! costs on every request (it showed in the hot-GET profile).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

static PREFIX: LazyLock<u32> = LazyLock::new(|| {
    let mut bytes = [0u8; 4];
    // Without entropy the ids are still unique within this process.
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
});
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Ids of the form `<8 hex prefix>-<counter>`.
#[derive(Clone, Copy, Default)]
pub struct MakeCounterId;

impl MakeRequestId for MakeCounterId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}-{n}", *PREFIX))
            .ok()
            .map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_share_the_prefix() {
        let req = Request::new(());
        let mut make = MakeCounterId;
        let a = make.make_request_id(&req).unwrap();
        let b = make.make_request_id(&req).unwrap();
        let (a, b) = (
            a.header_value().to_str().unwrap(),
            b.header_value().to_str().unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next());
    }
}
