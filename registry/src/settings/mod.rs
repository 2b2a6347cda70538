//! What applies to one repository: a byte quota, immutable tag patterns
//! and retention rules ([`berth_config::RepositorySettings`], by name or
//! pattern). They come from the server config file's `repositories:` and
//! from the policy file's (re-read when it changes), whether or not access
//! control is on: a registry without users still enforces its quotas.

use std::path::Path;
use std::sync::Arc;

use berth_config::{FileError, PolicyFile};
pub use berth_config::{RepositorySettings, RetentionRules, parse_duration};

use crate::pattern;
use crate::watch::Watched;

/// Where per-repository settings come from.
#[derive(Clone, Default)]
pub struct SettingsSource {
    /// From the server config file: fixed for the life of the process.
    config: Arc<Vec<RepositorySettings>>,
    /// From the policy file, when there is one.
    policy: Option<Watched<Vec<RepositorySettings>>>,
}

/// The `repositories:` of a policy file.
fn load_from_policy(path: &Path) -> Result<Vec<RepositorySettings>, FileError> {
    PolicyFile::load(path).map(|p| p.repositories)
}

impl SettingsSource {
    /// Settings of the config file, and of the policy file at `policy_file`.
    pub fn open(
        config: Vec<RepositorySettings>,
        policy_file: Option<&Path>,
    ) -> Result<Self, FileError> {
        Ok(Self {
            config: Arc::new(config),
            policy: policy_file
                .map(|path| Watched::load(path, load_from_policy))
                .transpose()?,
        })
    }

    /// Re-reads the policy file's settings when it changes.
    pub fn watch(&self) {
        if let Some(policy) = &self.policy {
            tokio::spawn(policy.clone().watch(crate::watch::POLL));
        }
    }

    /// Every entry, the config file's first.
    pub fn all(&self) -> Vec<RepositorySettings> {
        let mut all = self.config.as_ref().clone();
        if let Some(policy) = &self.policy {
            all.extend(policy.get().iter().cloned());
        }
        all
    }

    /// What applies to `repo`.
    pub fn for_repository(&self, repo: &str) -> Settings {
        let mut settings = Settings::for_repository(&self.config, repo);
        if let Some(policy) = &self.policy {
            settings.merge(Settings::for_repository(&policy.get(), repo));
        }
        settings
    }
}

/// A byte limit on the repositories matching `pattern`, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub pattern: String,
    pub limit_bytes: u64,
}

/// What applies to one repository.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub quotas: Vec<Quota>,
    pub immutable_tags: Vec<String>,
    /// The first matching entry's rules.
    pub retention: Option<RetentionRules>,
}

impl Settings {
    pub fn for_repository(entries: &[RepositorySettings], repo: &str) -> Self {
        let mut s = Settings::default();
        for e in entries.iter().filter(|e| pattern::matches(&e.name, repo)) {
            if let Some(limit) = e.quota_bytes {
                s.quotas.push(Quota {
                    pattern: e.name.clone(),
                    limit_bytes: limit,
                });
            }
            s.immutable_tags.extend(e.immutable_tags.iter().cloned());
            if s.retention.is_none() {
                s.retention = e.retention.clone();
            }
        }
        s
    }

    /// Adds what `other` sets (its retention only if this has none).
    fn merge(&mut self, other: Settings) {
        self.quotas.extend(other.quotas);
        self.immutable_tags.extend(other.immutable_tags);
        if self.retention.is_none() {
            self.retention = other.retention;
        }
    }

    /// The immutable-tag pattern `tag` matches, if any.
    pub fn immutable_pattern(&self, tag: &str) -> Option<&str> {
        self.immutable_tags
            .iter()
            .find(|p| pattern::matches(p, tag))
            .map(String::as_str)
    }

    pub fn is_immutable(&self, tag: &str) -> bool {
        self.immutable_pattern(tag).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_by_pattern() {
        let entries: Vec<RepositorySettings> = serde_yaml::from_str(
            "- name: team/*\n  quota_bytes: 100\n  immutable_tags: [v*]\n\
             - name: team/app\n  quota_bytes: 10\n  retention: {keep_last: 3}\n",
        )
        .unwrap();
        let s = Settings::for_repository(&entries, "team/app");
        assert_eq!(s.quotas.len(), 2);
        assert_eq!(s.immutable_pattern("v1"), Some("v*"));
        assert_eq!(s.retention.unwrap().keep_last, Some(3));
        let other = Settings::for_repository(&entries, "other/app");
        assert!(other.quotas.is_empty() && other.retention.is_none());
    }
}
