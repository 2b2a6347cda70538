//! What a reconcile changed, as the Events users see: `created Deployment
//! hub`, with the object named as the Event's related object.

use std::fmt;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Resource, ResourceExt};

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Deleted,
    Unchanged,
}

impl Change {
    /// The Event's reason and the verb of its note; None when nothing changed.
    pub fn reason_and_verb(self) -> Option<(&'static str, &'static str)> {
        match self {
            Change::Created => Some(("Created", "created")),
            Change::Updated => Some(("Updated", "updated")),
            Change::Deleted => Some(("Deleted", "deleted")),
            Change::Unchanged => None,
        }
    }
}

/// An object a reconcile created, updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub kind: String,
    /// Set for an object outside the reconciled object's namespace (it is
    /// then shown as `namespace/name`).
    pub namespace: Option<String>,
    pub name: String,
    /// Words after the object: `(robot credential)`, `imagePullSecrets`.
    pub detail: Option<&'static str>,
    pub change: Change,
}

impl Changed {
    pub fn new(kind: impl Into<String>, name: impl Into<String>, change: Change) -> Self {
        Changed {
            kind: kind.into(),
            namespace: None,
            name: name.into(),
            detail: None,
            change,
        }
    }

    /// `obj` (named by its kind and name) in the reconciled object's namespace.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K, change: Change) -> Self {
        Changed::new(K::kind(&()), obj.name_any(), change)
    }

    /// A `K` by name in the reconciled object's namespace.
    pub fn named<K: Resource<DynamicType = ()>>(name: impl Into<String>, change: Change) -> Self {
        Changed::new(K::kind(&()), name, change)
    }

    /// The object is in `namespace` (shown as `namespace/name`).
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The Event: its reason and note; None for an unchanged object.
    pub fn event(&self) -> Option<(&'static str, String)> {
        let (reason, verb) = self.change.reason_and_verb()?;
        Some((reason, format!("{verb} {self}")))
    }

    /// The Event's related object; `namespace` is the reconciled object's.
    pub fn related(&self, namespace: &str) -> ObjectReference {
        ObjectReference {
            kind: Some(self.kind.clone()),
            namespace: Some(self.namespace.as_deref().unwrap_or(namespace).to_string()),
            name: Some(self.name.clone()),
            ..Default::default()
        }
    }
}

/// `Kind name`, `Kind namespace/name`, then the detail if any.
impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(detail) = self.detail {
            write!(f, " {detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

    use super::*;

    #[test]
    fn notes_and_related_objects() {
        let c = Changed::named::<Secret>("hub-token-key", Change::Created)
            .detail("(token signing key)");
        assert_eq!(
            c.event(),
            Some((
                "Created",
                "created Secret hub-token-key (token signing key)".to_string()
            ))
        );
        let r = c.related("team-a");
        assert_eq!(r.kind.as_deref(), Some("Secret"));
        assert_eq!(r.namespace.as_deref(), Some("team-a"));
        assert_eq!(r.name.as_deref(), Some("hub-token-key"));

        let c = Changed::named::<ServiceAccount>("runner", Change::Updated)
            .in_namespace("build")
            .detail("imagePullSecrets");
        assert_eq!(
            c.event().map(|e| e.1).as_deref(),
            Some("updated ServiceAccount build/runner imagePullSecrets")
        );
        assert_eq!(c.related("team-a").namespace.as_deref(), Some("build"));

        assert_eq!(
            Changed::new("Deployment", "hub", Change::Unchanged).event(),
            None
        );
        assert_eq!(
            Changed::new("Ingress", "hub", Change::Deleted).event(),
            Some(("Deleted", "deleted Ingress hub".to_string()))
        );
    }
}
