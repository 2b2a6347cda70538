//! The policy file: robots, groups and ordered rules, in the format the
//! operator renders into a Registry's ConfigMap. Re-read when it changes
//! (a ConfigMap update swaps a symlink); an invalid new file keeps the old
//! policy in force.
//!
//! ```yaml
//! anonymous_pull: false          # shorthand for a rule: "**", anonymous, pull
//! groups:                        # optional: group -> htpasswd users
//!   dev: [alice, bob]
//! robots:                        # long random secrets, stored as hex sha256
//!   - name: robot$team-a+app
//!     password_sha256: 5e88...
//! rules:                         # any rule that matches grants its actions
//!   - repositories: ["team-a/*"] # exact name, or `*` for any characters
//!     subjects: ["group:dev", "robot:robot$team-a+app"]
//!     actions: [pull, push]
//! ```
//! Subjects: `anonymous`, `authenticated` (any user or robot), `user:NAME`,
//! `group:NAME`, `robot:NAME`. Nothing is allowed that no rule grants.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Action, Identity};
use crate::pattern;
use crate::settings::{RepositorySettings, Settings};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    pub name: String,
    /// Lowercase hex sha256 of the secret.
    pub password_sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Where the rule comes from (the operator writes `namespace/name`).
    #[serde(default)]
    pub source: Option<String>,
    pub repositories: Vec<String>,
    pub subjects: Vec<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub anonymous_pull: bool,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub robots: Vec<Robot>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Per-repository settings: quota, immutable tags, retention.
    #[serde(default)]
    pub repositories: Vec<RepositorySettings>,
}

impl Policy {
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let policy: Policy = if text.trim().is_empty() {
            Policy::default()
        } else {
            serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(
                |e| PolicyError::Invalid {
                    path: path.to_path_buf(),
                    field: e.path().to_string(),
                    message: e.into_inner().to_string(),
                },
            )?
        };
        policy.validate(path)?;
        Ok(policy)
    }

    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn validate(&self, path: &Path) -> Result<(), PolicyError> {
        let invalid = |field: String, message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        for (i, robot) in self.robots.iter().enumerate() {
            let h = &robot.password_sha256;
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(
                    format!("robots[{i}].password_sha256"),
                    "must be 64 lowercase hex characters (sha256 of the secret)".into(),
                ));
            }
        }
        for (i, settings) in self.repositories.iter().enumerate() {
            settings.validate().map_err(|(field, message)| {
                invalid(format!("repositories[{i}].{field}"), message)
            })?;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            for (j, s) in rule.subjects.iter().enumerate() {
                let ok = matches!(s.as_str(), "anonymous" | "authenticated")
                    || ["user:", "group:", "robot:"]
                        .iter()
                        .any(|p| s.strip_prefix(p).is_some_and(|n| !n.is_empty()));
                if !ok {
                    return Err(invalid(
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

    /// What the `repositories:` entries matching `repo` ask of it.
    pub fn settings(&self, repo: &str) -> Settings {
        Settings::for_repository(&self.repositories, repo)
    }

    pub fn robot(&self, name: &str) -> Option<&Robot> {
        self.robots.iter().find(|r| r.name == name)
    }

    fn subject_matches(&self, subject: &str, who: &Identity) -> bool {
        match (subject, who) {
            ("anonymous", Identity::Anonymous) => true,
            ("authenticated", Identity::User { .. } | Identity::Robot { .. }) => true,
            (s, Identity::User { name }) => {
                s.strip_prefix("user:") == Some(name.as_str())
                    || s.strip_prefix("group:")
                        .and_then(|g| self.groups.get(g))
                        .is_some_and(|members| members.iter().any(|m| m == name))
            }
            (s, Identity::Robot { name }) => s.strip_prefix("robot:") == Some(name.as_str()),
            _ => false,
        }
    }

    /// Every action `who` may take on repository `repo`.
    pub fn allowed(&self, who: &Identity, repo: &str) -> BTreeSet<Action> {
        let mut actions = BTreeSet::new();
        if self.anonymous_pull {
            actions.insert(Action::Pull);
        }
        for rule in &self.rules {
            if rule.repositories.iter().any(|p| pattern::matches(p, repo))
                && rule.subjects.iter().any(|s| self.subject_matches(s, who))
            {
                actions.extend(rule.actions.iter().copied());
            }
        }
        actions
    }

    pub fn permits(&self, who: &Identity, repo: &str, action: Action) -> bool {
        self.allowed(who, repo).contains(&action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
anonymous_pull: false
groups:
  dev: [alice]
robots:
  - name: robot$ci
    password_sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
rules:
  - repositories: ["public/*"]
    subjects: [anonymous, authenticated]
    actions: [pull]
  - repositories: ["ci/*"]
    subjects: ["robot:robot$ci"]
    actions: [pull, push]
  - repositories: ["team/app"]
    subjects: ["group:dev"]
    actions: [push]
"#;

    #[test]
    fn rules_grant_only_what_they_say() {
        let p = Policy::parse(FILE, Path::new("p.yaml")).unwrap();
        let anon = Identity::Anonymous;
        let alice = Identity::User {
            name: "alice".into(),
        };
        let bob = Identity::User { name: "bob".into() };
        let ci = Identity::Robot {
            name: "robot$ci".into(),
        };
        assert!(p.permits(&anon, "public/x/y", Action::Pull));
        assert!(!p.permits(&anon, "public/x", Action::Push));
        assert!(!p.permits(&anon, "publicity", Action::Pull));
        assert!(p.permits(&bob, "public/x", Action::Pull));
        assert!(p.permits(&ci, "ci/app", Action::Push));
        assert!(!p.permits(&ci, "prod/app", Action::Push));
        // push implies nothing else
        assert!(p.permits(&alice, "team/app", Action::Push));
        assert!(!p.permits(&alice, "team/app", Action::Pull));
        assert!(!p.permits(&bob, "team/app", Action::Push));
        assert!(!p.permits(&anon, "ci/app", Action::Pull));
    }

    /// The shape berth-operator renders from Repository objects.
    #[test]
    fn reads_the_operator_rendered_file() {
        let text = format!(
            "# Rendered by berth-operator\nanonymous_pull: false\nrobots:\n- name: robot$team-a+app\n  password_sha256: {h}\n\
             rules:\n- source: team-a/app\n  repositories:\n  - team-a/app\n  subjects:\n  - user:alice\n  - robot:robot$team-a+app\n  actions:\n  - pull\n  - push\n\
             repositories:\n- name: team-a/app\n  source: team-a/app\n  quota_bytes: 1073741824\n  immutable_tags:\n  - v*\n  retention:\n    keep_last: 10\n    delete_untagged: true\n",
            h = "a".repeat(64)
        );
        let p = Policy::parse(&text, Path::new("policy.yaml")).unwrap();
        let robot = Identity::Robot {
            name: "robot$team-a+app".into(),
        };
        assert!(p.permits(&robot, "team-a/app", Action::Push));
        assert!(!p.permits(&robot, "team-a/other", Action::Pull));
        assert_eq!(p.repositories.len(), 1);
        let s = p.settings("team-a/app");
        assert_eq!(s.quotas[0].limit_bytes, 1 << 30);
        assert!(s.is_immutable("v1.0"));
        assert!(!s.is_immutable("latest"));
        let r = s.retention.expect("retention rules");
        assert_eq!(r.keep_last, Some(10));
        assert!(r.delete_untagged);
        assert!(p.settings("team-a/other").quotas.is_empty());
    }

    #[test]
    fn invalid_files_name_the_field() {
        let e = Policy::parse(
            "rules:\n- repositories: [a]\n  subjects: [everyone]\n  actions: [pull]\n",
            Path::new("p"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rules[0].subjects[0]"), "{e}");
        let e = Policy::parse(
            "rules:\n- repositories: [a]\n  subjects: [anonymous]\n  actions: [fly]\n",
            Path::new("p"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rules[0].actions"), "{e}");
        let e = Policy::parse(
            "robots:\n- name: r\n  password_sha256: plain\n",
            Path::new("p"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("password_sha256"), "{e}");
    }
}
