//! The byte ranges of the API, parsed: `Range` on blob GETs (RFC 9110, a
//! single range) and `Content-Range` on upload PATCHes (the spec's
//! `<start>-<end>`). Pure functions, unit-tested here and fuzzed
//! (`fuzz/fuzz_targets/ranges.rs`).

use std::ops::Range;

/// Outcome of reading a `Range` header against a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range (multiple ranges are served whole, as RFC 9110 allows).
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(s), Ok(e)) if s > e => return RangeRequest::Unsatisfiable,
        (Ok(s), Ok(e)) => s..e.saturating_add(1).min(size),
        (Ok(s), Err(_)) if end.is_empty() => s..size,
        // A suffix of zero bytes is unsatisfiable (RFC 9110, 14.1.1).
        (Err(_), Ok(0)) if start.is_empty() => return RangeRequest::Unsatisfiable,
        (Err(_), Ok(n)) if start.is_empty() => size.saturating_sub(n)..size,
        _ => return RangeRequest::Full,
    };
    if range.start >= size {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range)
    }
}

/// `Content-Range: <start>-<end>` (also `bytes <start>-<end>/<total>`):
/// the inclusive range of a chunk. None if it is not that shape, or ends
/// before it starts.
pub fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let spec = value.trim().trim_start_matches("bytes").trim();
    let spec = spec.split('/').next().unwrap_or("");
    spec.split_once('-')
        .and_then(|(s, e)| Some((s.trim().parse::<u64>().ok()?, e.trim().parse::<u64>().ok()?)))
        .filter(|(s, e)| s <= e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Partial(0..5));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Partial(5..10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial(7..10));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Partial(8..10));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        // Found by the fuzzer: the last byte's position overflowed.
        assert_eq!(
            parse_range(Some("bytes=0-18446744073709551615"), 10),
            Partial(0..10)
        );
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, 199)));
        assert_eq!(parse_content_range("5-4"), None);
        assert_eq!(parse_content_range("garbage"), None);
        assert_eq!(parse_content_range("-5"), None);
    }
}
