//! Names, tags and digests: the grammars never panic, a digest that parses
//! prints back as itself, and a name that is valid has no empty segment.
#![no_main]

use berth_registry::oci::digest::Digest;
use berth_registry::oci::names::{is_valid_name, is_valid_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string(), text);
        assert_eq!(digest.hex().len(), digest.algorithm().hex_len());
    }
    if is_valid_name(text) {
        assert!(text.split('/').all(|s| !s.is_empty()), "{text:?}");
        assert!(!text.contains(".."), "{text:?}");
    }
    if is_valid_tag(text) {
        assert!(!text.is_empty() && text.len() <= 128 && !text.contains(['/', ':']));
    }
});
