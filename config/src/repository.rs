//! Per-repository settings: a byte quota, immutable tag patterns and
//! retention rules, for a repository name or a pattern (`team/*`; a quota on
//! a pattern limits all matching repositories together). They are listed
//! under `repositories:` in the policy file (the operator renders them from
//! `Repository` objects) or in the server config file.
//!
//! ```yaml
//! repositories:
//!   - name: team-a/*
//!     quota_bytes: 21474836480
//!     immutable_tags: ["v*"]
//!     retention: {keep_last: 10, max_age: 30d, protect_tags: [latest], delete_untagged: true}
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySettings {
    /// Repository name or pattern.
    pub name: String,
    /// The `namespace/name` of the Repository object it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub immutable_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionRules>,
}

/// Which tags `berth retention` deletes. A tag is deleted when it is a
/// candidate (matches `only_tags` if given, no `protect_tags`, not
/// immutable) and every rule that is set agrees: it is not among the
/// `keep_last` newest candidates, and it was pushed more than `max_age` ago.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// `30d`, `720h`, `2w`, … (see [`parse_duration`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protect_tags: Vec<String>,
    /// Also delete manifests no tag reaches (after the tag deletions).
    #[serde(default)]
    pub delete_untagged: bool,
}

impl RetentionRules {
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age.as_deref().and_then(|a| parse_duration(a).ok())
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.max_age.is_none() && !self.delete_untagged
    }
}

impl RepositorySettings {
    /// Checks what serde cannot; on error, the field and the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.name.is_empty() {
            return Err(("name".into(), "must not be empty".into()));
        }
        if let Some(age) = self.retention.as_ref().and_then(|r| r.max_age.as_deref()) {
            parse_duration(age).map_err(|e| ("retention.max_age".into(), e))?;
        }
        Ok(())
    }
}

/// `<number><unit>` with unit s, m, h, d or w (the operator's CRD grammar),
/// or anything `humantime` reads (`1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 30s, 15m, 12h, 30d or 2w: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86400)
        );
        assert_eq!(
            parse_duration("720h").unwrap(),
            Duration::from_secs(720 * 3600)
        );
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_yaml::from_str::<Vec<RepositorySettings>>("- name: a\n  quota: 1\n").is_err()
        );
    }
}
