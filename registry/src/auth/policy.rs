//! The policy file in force: [`berth_config::PolicyFile`] (its format and
//! validation are shared with the operator, which renders it) with the
//! decisions made from it: who may do what to which repository.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::path::Path;

use berth_config::{FileError, PolicyFile, RepositorySettings};

use super::{Action, Identity};
use crate::pattern;

/// A loaded, valid policy file, with the SHA-256 of its bytes (what the
/// operator compares with the policy it rendered).
#[derive(Debug, Clone, Default)]
pub struct Policy(PolicyFile, String);

impl Deref for Policy {
    type Target = PolicyFile;

    fn deref(&self) -> &PolicyFile {
        &self.0
    }
}

impl Policy {
    pub fn parse(text: &str, path: &Path) -> Result<Self, FileError> {
        let sha256 =
            crate::oci::digest::Digest::of(crate::oci::digest::Algorithm::Sha256, text.as_bytes())
                .hex()
                .to_string();
        PolicyFile::parse(text, path).map(|file| Policy(file, sha256))
    }

    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Lowercase hex SHA-256 of the file's bytes as loaded.
    pub fn sha256(&self) -> &str {
        &self.1
    }

    /// The per-repository settings the file lists.
    pub fn repositories(&self) -> &[RepositorySettings] {
        &self.0.repositories
    }

    pub fn robot(&self, name: &str) -> Option<&berth_config::Robot> {
        self.0.robots.iter().find(|r| r.name == name)
    }

    fn subject_matches(&self, subject: &str, who: &Identity) -> bool {
        match (subject, who) {
            ("anonymous", Identity::Anonymous) => true,
            ("authenticated", Identity::User { .. } | Identity::Robot { .. }) => true,
            (s, Identity::User { name }) => {
                s.strip_prefix("user:") == Some(name.as_str())
                    || s.strip_prefix("group:")
                        .and_then(|g| self.0.groups.get(g))
                        .is_some_and(|members| members.iter().any(|m| m == name))
            }
            (s, Identity::Robot { name }) => s.strip_prefix("robot:") == Some(name.as_str()),
            _ => false,
        }
    }

    /// Every action `who` may take on repository `repo`.
    pub fn allowed(&self, who: &Identity, repo: &str) -> BTreeSet<Action> {
        let mut actions = BTreeSet::new();
        if self.0.anonymous_pull {
            actions.insert(Action::Pull);
        }
        for rule in &self.0.rules {
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
        assert_eq!(p.repositories().len(), 1);
        let s = crate::settings::Settings::for_repository(p.repositories(), "team-a/app");
        assert_eq!(s.quotas[0].limit_bytes, 1 << 30);
        assert!(s.is_immutable("v1.0"));
        assert!(!s.is_immutable("latest"));
        let r = s.retention.expect("retention rules");
        assert_eq!(r.keep_last, Some(10));
        assert!(r.delete_untagged);
        assert!(
            crate::settings::Settings::for_repository(p.repositories(), "team-a/other")
                .quotas
                .is_empty()
        );
    }
}
