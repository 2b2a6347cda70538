//! The policy file: robots, groups and rules, in the format the operator
//! renders into a Registry's ConfigMap (and people write by hand). The
//! registry re-reads it when it changes; `berth_registry::auth` decides
//! with it.
//!
//! ```yaml
//! anonymous_pull: false          # shorthand for a rule: everything, anonymous, pull
//! groups:                        # group -> htpasswd users
//!   dev: [alice, bob]
//! robots:                        # long random secrets, stored as hex sha256
//!   - name: robot$team-a+app
//!     password_sha256: 5e88...
//! rules:                         # any rule that matches grants its actions
//!   - repositories: ["team-a/*"] # exact name, or `*` for any characters
//!     subjects: ["group:dev", "robot:robot$team-a+app"]
//!     actions: [pull, push]
//! repositories: []               # per-repository settings (crate::repository)
//! ```
//! Subjects: `anonymous`, `authenticated` (any user or robot), `user:NAME`,
//! `group:NAME`, `robot:NAME`. Nothing is allowed that no rule grants.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{FileError, load_yaml, parse_yaml};
use crate::repository::RepositorySettings;

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    pub name: String,
    /// Lowercase hex sha256 of the secret.
    pub password_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Where the rule comes from (the operator writes `namespace/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub repositories: Vec<String>,
    pub subjects: Vec<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub anonymous_pull: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub robots: Vec<Robot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Per-repository settings: quota, immutable tags, retention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositorySettings>,
}

/// Whether `subject` is one of the subject forms.
pub fn is_subject(subject: &str) -> bool {
    matches!(subject, "anonymous" | "authenticated")
        || ["user:", "group:", "robot:"]
            .iter()
            .any(|p| subject.strip_prefix(p).is_some_and(|n| !n.is_empty()))
}

impl PolicyFile {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let policy: PolicyFile = load_yaml(path)?;
        policy.validate(path)?;
        Ok(policy)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, FileError> {
        let policy: PolicyFile = parse_yaml(text, path)?;
        policy.validate(path)?;
        Ok(policy)
    }

    /// Checks what serde cannot, naming the field.
    pub fn validate(&self, path: &Path) -> Result<(), FileError> {
        for (i, robot) in self.robots.iter().enumerate() {
            let h = &robot.password_sha256;
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(FileError::invalid(
                    path,
                    format!("robots[{i}].password_sha256"),
                    "must be 64 lowercase hex characters (sha256 of the secret)",
                ));
            }
        }
        for (i, settings) in self.repositories.iter().enumerate() {
            settings.validate().map_err(|(field, message)| {
                FileError::invalid(path, format!("repositories[{i}].{field}"), message)
            })?;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            for (j, s) in rule.subjects.iter().enumerate() {
                if !is_subject(s) {
                    return Err(FileError::invalid(
                        path,
                        format!("rules[{i}].subjects[{j}]"),
                        format!(
                            "`{s}` is not anonymous, authenticated, user:NAME, group:NAME or robot:NAME"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_files_name_the_field() {
        let e = PolicyFile::parse(
            "rules:\n- repositories: [a]\n  subjects: [everyone]\n  actions: [pull]\n",
            Path::new("p"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rules[0].subjects[0]"), "{e}");
        let e = PolicyFile::parse(
            "rules:\n- repositories: [a]\n  subjects: [anonymous]\n  actions: [pul]\n",
            Path::new("p"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rules[0].actions"), "{e}");
        let e = PolicyFile::parse(
            "robots:\n- name: r\n  password_sha256: plain\n",
            Path::new("p"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("password_sha256"), "{e}");
    }

    #[test]
    fn a_rendered_file_reads_back() {
        let file = PolicyFile {
            anonymous_pull: true,
            rules: vec![Rule {
                source: Some("team-a/app".into()),
                repositories: vec!["team-a/app".into()],
                subjects: vec!["user:alice".into()],
                actions: vec![Action::Pull, Action::Push],
            }],
            ..Default::default()
        };
        let yaml = file.to_yaml().unwrap();
        assert_eq!(PolicyFile::parse(&yaml, Path::new("p")).unwrap(), file);
    }
}
