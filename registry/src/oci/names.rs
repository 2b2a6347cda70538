//! The distribution spec's grammars for repository names and tags.

use std::sync::LazyLock;

use regex::Regex;

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
