//! The UI's static files, embedded in the binary: a stylesheet, a little
//! JavaScript, the logo. Served with a long cache lifetime under URLs that
//! carry a hash of their content (`?v=…`), so a new build is never shown
//! stale ones.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// (name, content type, bytes)
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "logo.svg",
        "image/svg+xml",
        include_bytes!("assets/logo.svg"),
    ),
];

/// A hash of every file: one version for all of them.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, _, bytes) in FILES {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    hex::encode(&h.finalize()[..6])
});

/// The URL of asset `name`, with the version.
pub fn url(name: &str) -> String {
    format!("/ui/assets/{name}?v={}", *VERSION)
}

/// The content type and bytes of asset `name`.
pub fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, b)| (*t, *b))
}

/// Bytes of all assets together (for the size budget).
pub fn total_bytes() -> usize {
    FILES.iter().map(|(_, _, b)| b.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_and_small() {
        assert_eq!(
            get("style.css").map(|(t, _)| t),
            Some("text/css; charset=utf-8")
        );
        assert!(get("../secret").is_none());
        assert!(url("app.js").starts_with("/ui/assets/app.js?v="));
        // The budget is 1 MiB gzipped; uncompressed they are far below it.
        assert!(total_bytes() < 64 * 1024, "{}", total_bytes());
        // No asset reaches outside the registry.
        for (name, _, bytes) in FILES {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("https://") && !text.contains("@import"),
                "{name}"
            );
        }
    }
}
