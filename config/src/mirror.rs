//! Upstream registries Berth mirrors (a pull-through cache): what the
//! `mirrors:` list of the config file holds, and `--mirror NAME=URL`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How long a tag fetched from an upstream is served without asking it
/// again, unless the mirror says otherwise.
pub const DEFAULT_TAG_TTL_SECONDS: u64 = 300;

/// One upstream registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The registry as clients name it (`docker.io`, `ghcr.io`): the
    /// `?ns=` value containerd sends, and the first path component of
    /// prefix addressing (`/v2/docker.io/library/alpine/...`). Cached
    /// content lives in repositories under `<name>/`.
    pub name: String,
    /// Base URL of the upstream's API (`https://registry-1.docker.io`).
    pub url: String,
    /// User name for the upstream (basic credentials, or for its token
    /// endpoint); anonymous without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the upstream password (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Seconds a tag is served from the cache before the upstream is asked
    /// whether it moved [default: 300]. Digests are never asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_ttl_seconds: Option<u64>,
    /// Upstream repositories that may be pulled through (patterns such as
    /// `library/*`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Bytes the cache of this upstream may hold; gc removes what was
    /// pulled least recently beyond it. No limit when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Whether clients may also push into the mirror's repositories
    /// [default: false, they get DENIED].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_push: Option<bool>,
}

impl MirrorConfig {
    /// `NAME=URL`, as `--mirror` takes it.
    pub fn parse_flag(flag: &str) -> Result<Self, String> {
        let (name, url) = flag.split_once('=').ok_or_else(|| {
            format!("`{flag}` is not NAME=URL (e.g. docker.io=https://registry-1.docker.io)")
        })?;
        let mirror = MirrorConfig {
            name: name.trim().to_string(),
            url: url.trim().to_string(),
            ..Default::default()
        };
        mirror
            .validate()
            .map_err(|(field, message)| format!("{field}: {message}"))?;
        Ok(mirror)
    }

    /// The field at fault and why, if the settings cannot work.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let component = |s: &str| {
            !s.is_empty()
                && s.split(['.', '_', '-']).all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        };
        if !component(&self.name) {
            return Err((
                "name",
                format!(
                    "`{}` must be one repository path component: lowercase letters, digits, and `.`, `_` or `-` between them (e.g. docker.io)",
                    self.name
                ),
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err((
                "url",
                format!("`{}` is not an http:// or https:// URL", self.url),
            ));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err(("password_file", "needs a username".into()));
        }
        if self.tag_ttl_seconds == Some(0) {
            // 0 would ask the upstream on every pull: say so explicitly.
            return Err(("tag_ttl_seconds", "must be more than 0".into()));
        }
        Ok(())
    }

    /// The upstream's `host[:port]`, which containerd may send as `?ns=`.
    pub fn authority(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_validation() {
        let m = MirrorConfig::parse_flag("docker.io=https://registry-1.docker.io").unwrap();
        assert_eq!(m.name, "docker.io");
        assert_eq!(m.authority(), "registry-1.docker.io");
        assert!(
            MirrorConfig::parse_flag("docker.io")
                .unwrap_err()
                .contains("NAME=URL")
        );
        assert!(
            MirrorConfig::parse_flag("Docker.io=https://x")
                .unwrap_err()
                .contains("name")
        );
        assert!(
            MirrorConfig::parse_flag("localhost:5000=http://x")
                .unwrap_err()
                .contains("name")
        );
        assert!(
            MirrorConfig::parse_flag("up=ftp://x")
                .unwrap_err()
                .contains("url")
        );
        let m = MirrorConfig::parse_flag("upstream.test=http://127.0.0.1:5003/").unwrap();
        assert_eq!(m.authority(), "127.0.0.1:5003");
        let no_user = MirrorConfig {
            password_file: Some("/p".into()),
            ..m.clone()
        };
        assert_eq!(no_user.validate().unwrap_err().0, "password_file");
    }
}
