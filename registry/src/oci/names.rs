//! The distribution spec's grammars for repository names and tags.

use std::sync::LazyLock;

use regex::Regex;

use super::digest::{Digest, DigestError};

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
        .expect("static regex")
});

static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("static regex"));

/// Longest repository name accepted; the spec suggests clients keep
/// `host/name` under 255 characters.
pub const MAX_NAME_LEN: usize = 255;

pub fn is_valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && NAME.is_match(name)
}

pub fn is_valid_tag(tag: &str) -> bool {
    TAG.is_match(tag)
}

/// The `<reference>` of a manifest path: a tag, or a digest (it has a `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOrDigest {
    Tag(String),
    Digest(Digest),
}

/// A reference that is neither a valid tag nor a valid digest.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("`{0}` is neither a digest nor a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})")]
    Tag(String),
}

impl std::str::FromStr for TagOrDigest {
    type Err = ReferenceError;

    fn from_str(reference: &str) -> Result<Self, ReferenceError> {
        if reference.contains(':') {
            Ok(TagOrDigest::Digest(reference.parse()?))
        } else if is_valid_tag(reference) {
            Ok(TagOrDigest::Tag(reference.to_string()))
        } else {
            Err(ReferenceError::Tag(reference.to_string()))
        }
    }
}

impl std::fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagOrDigest::Tag(t) => f.write_str(t),
            TagOrDigest::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/ubuntu",
            "a/b/c/d/e",
            "my-app_1.0",
            "x__y",
            "a--b",
        ] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "../a", "a/../b", "a..b", "a_-b", "-a", "a b",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_v1.0-rc.1"));
        assert!(!is_valid_tag(".hidden"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag("a:b"));
    }
}
