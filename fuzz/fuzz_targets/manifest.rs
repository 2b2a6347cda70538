//! The manifest validator: any bytes, with any of the manifest media types
//! as Content-Type, give a result or an error, never a panic; what it
//! accepts is stored under a media type and lists no negative sizes.
#![no_main]

use berth_registry::oci::manifest;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some(manifest::OCI_MANIFEST),
    Some(manifest::OCI_INDEX),
    Some(manifest::DOCKER_MANIFEST),
    Some(manifest::DOCKER_MANIFEST_LIST),
    Some("application/json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[selector as usize % CONTENT_TYPES.len()];
    if let Ok(parsed) = manifest::parse(body, content_type) {
        assert!(!parsed.media_type.is_empty());
        // An image manifest lists its config; an index lists no blobs.
        let is_index = parsed.media_type == manifest::OCI_INDEX
            || parsed.media_type == manifest::DOCKER_MANIFEST_LIST;
        assert!(is_index || !parsed.blobs.is_empty());
        assert!(!is_index || parsed.blobs.is_empty());
    }
});
