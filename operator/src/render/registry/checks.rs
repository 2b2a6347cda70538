//! What a Registry's spec needs to work: a valid schedule and volume size,
//! and the Secrets it names (with the keys they must hold). The controller
//! fetches the Secrets; these functions decide.

use k8s_openapi::api::core::v1::Secret;

use crate::crd::Registry;
use crate::render::{Problem, parse_bytes, schedule};

/// What is wrong with the spec by itself (no Secret looked at), if anything.
pub fn registry_problem(reg: &Registry) -> Option<Problem> {
    if let Err(e) = schedule::validate(&reg.spec.gc.schedule) {
        return Some(Problem::new(
            "InvalidSchedule",
            format!("spec.gc.schedule {:?}: {e}", reg.spec.gc.schedule),
        ));
    }
    if let Some(v) = &reg.spec.storage.volume
        && let Err(e) = parse_bytes(&v.size)
    {
        return Some(Problem::new(
            "InvalidStorageSize",
            format!("spec.storage.volume.size: {e}"),
        ));
    }
    super::mirror_problem(reg)
}

/// A Secret (in the Registry's namespace) the spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredSecret {
    /// The field of the spec that names it.
    pub field: &'static str,
    pub name: String,
    /// A key it must hold; None when any content will do.
    pub key: Option<String>,
}

impl RequiredSecret {
    fn new(field: &'static str, name: &str, key: Option<&str>) -> Self {
        RequiredSecret {
            field,
            name: name.into(),
            key: key.map(str::to_string),
        }
    }
}

/// The Secrets the spec names, in the order they are checked (a Secret
/// needing two keys is listed twice).
pub fn required_secrets(reg: &Registry) -> Vec<RequiredSecret> {
    let mut wanted = Vec::new();
    if let Some(s) = &reg.spec.auth.htpasswd_secret {
        wanted.push(RequiredSecret::new(
            "spec.auth.htpasswdSecret",
            s,
            Some("htpasswd"),
        ));
    }
    if let Some(s3) = &reg.spec.storage.s3 {
        for key in ["accessKeyId", "secretAccessKey"] {
            wanted.push(RequiredSecret::new(
                "spec.storage.s3.credentialsSecret",
                &s3.credentials_secret,
                Some(key),
            ));
        }
    }
    for c in reg
        .spec
        .mirrors
        .iter()
        .filter_map(|m| m.credentials.as_ref())
    {
        wanted.push(RequiredSecret::new(
            "spec.mirrors[].credentials.passwordSecret",
            &c.password_secret,
            Some(&c.password_key),
        ));
    }
    if let Some(pg) = &reg.spec.database.postgres {
        wanted.push(RequiredSecret::new(
            "spec.database.postgres.urlSecret",
            &pg.url_secret.name,
            Some(&pg.url_secret.key),
        ));
    }
    if let Some(tls) = reg
        .spec
        .ingress
        .as_ref()
        .and_then(|i| i.tls_secret.as_deref())
    {
        wanted.push(RequiredSecret::new("spec.ingress.tlsSecret", tls, None));
    }
    wanted
}

/// What is wrong with a required Secret as found in namespace `ns` (None:
/// it does not exist), if anything.
pub fn secret_problem(
    ns: &str,
    required: &RequiredSecret,
    found: Option<&Secret>,
) -> Option<Problem> {
    let RequiredSecret { field, name, key } = required;
    let Some(secret) = found else {
        return Some(Problem::new(
            "SecretNotFound",
            format!(
                "{field}: Secret {ns}/{name} does not exist; create it and the registry will be deployed"
            ),
        ));
    };
    let key = key.as_deref()?;
    let has = secret.data.as_ref().is_some_and(|d| d.contains_key(key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key));
    (!has).then(|| {
        Problem::new(
            "SecretKeyMissing",
            format!("{field}: Secret {ns}/{name} has no key {key:?}"),
        )
    })
}
