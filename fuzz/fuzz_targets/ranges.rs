//! `Range` and `Content-Range`: never a panic, and a satisfiable range lies
//! inside the blob and is not empty.
#![no_main]

use berth_registry::http::range::{RangeRequest, parse_content_range, parse_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) >> (data[0] % 64);
    let Ok(header) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    if let RangeRequest::Partial(r) = parse_range(Some(header), size) {
        assert!(
            r.start < r.end && r.end <= size,
            "{header:?} on {size}: {r:?}"
        );
    }
    if let Some((start, end)) = parse_content_range(header) {
        assert!(start <= end, "{header:?}");
    }
});
