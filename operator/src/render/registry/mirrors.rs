//! A Registry's mirrors (`spec.mirrors`): their entries in the server
//! config, the password files mounted for them, the policy rules that let
//! nodes pull through them, and the containerd `hosts.toml` each node needs
//! to use them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_config::MirrorConfig;
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, SecretVolumeSource, Volume, VolumeMount};
use kube::ResourceExt;

use super::{CONFIG_DIR, registry_meta};
use crate::crd::{MirrorSpec, Registry};
use crate::render::{Problem, RenderError, quota_bytes};

/// Where the password of mirror `name` is mounted.
fn password_dir(index: usize) -> String {
    format!("{CONFIG_DIR}/mirrors/{index}")
}

/// The `mirrors:` entries of the server config.
pub fn mirror_configs(reg: &Registry) -> Vec<MirrorConfig> {
    reg.spec
        .mirrors
        .iter()
        .enumerate()
        .map(|(i, m)| MirrorConfig {
            name: m.name.clone(),
            url: m.url.clone(),
            username: m.credentials.as_ref().map(|c| c.username.clone()),
            password_file: m
                .credentials
                .as_ref()
                .map(|_| PathBuf::from(format!("{}/password", password_dir(i)))),
            tag_ttl_seconds: m.tag_ttl_seconds,
            repositories: m.repositories.clone(),
            // A size that does not parse is a Problem (mirror_problem), and
            // the Registry is not rendered at all then.
            max_bytes: m.max_size.as_deref().and_then(|q| quota_bytes(q).ok()),
            allow_push: None,
        })
        .collect()
}

/// A volume and a mount per mirror with credentials: its password Secret's
/// key as the file `password`.
pub(super) fn password_volumes(reg: &Registry) -> Vec<(Volume, VolumeMount)> {
    reg.spec
        .mirrors
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let c = m.credentials.as_ref()?;
            let name = format!("mirror-{i}");
            Some((
                Volume {
                    name: name.clone(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(c.password_secret.clone()),
                        items: Some(vec![KeyToPath {
                            key: c.password_key.clone(),
                            path: "password".into(),
                            mode: None,
                        }]),
                        default_mode: Some(0o440),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeMount {
                    name,
                    mount_path: password_dir(i),
                    read_only: Some(true),
                    ..Default::default()
                },
            ))
        })
        .collect()
}

/// The repositories anonymous may pull: `<name>/*` of every mirror whose
/// [`MirrorSpec::anonymous_pull`] holds.
pub fn anonymous_mirror_repositories(reg: &Registry) -> Vec<String> {
    reg.spec
        .mirrors
        .iter()
        .filter(|m| m.anonymous_pull())
        .map(|m| format!("{}/*", m.name))
        .collect()
}

/// What is wrong with `spec.mirrors`, if anything: what the registry would
/// refuse at start, said on the Registry instead.
pub fn mirror_problem(reg: &Registry) -> Option<Problem> {
    let mut seen = BTreeMap::new();
    for (i, (m, config)) in reg.spec.mirrors.iter().zip(mirror_configs(reg)).enumerate() {
        if let Err((field, message)) = config.validate() {
            return Some(Problem::new(
                "InvalidMirror",
                format!("spec.mirrors[{i}].{}: {message}", camel(field)),
            ));
        }
        if let Some(q) = &m.max_size
            && let Err(e) = quota_bytes(q)
        {
            return Some(Problem::new(
                "InvalidMirror",
                format!("spec.mirrors[{i}].maxSize: {e}"),
            ));
        }
        if let Some(first) = seen.insert(m.name.as_str(), i) {
            return Some(Problem::new(
                "InvalidMirror",
                format!(
                    "spec.mirrors[{i}].name: `{}` is also the name of spec.mirrors[{first}]",
                    m.name
                ),
            ));
        }
    }
    None
}

/// The config file's field name as the CRD spells it.
fn camel(field: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    match out.as_str() {
        "maxBytes" => "maxSize".into(),
        "passwordFile" => "credentials".into(),
        _ => out,
    }
}

/// Name of the ConfigMap holding the nodes' `hosts.toml` files.
pub fn containerd_hosts_name(registry: &str) -> String {
    format!("{registry}-containerd-hosts")
}

/// The `hosts.toml` containerd reads from `/etc/containerd/certs.d/<name>/`:
/// pulls of `<name>` images go to this Registry at `endpoint` first (its
/// node endpoint `localhost:<port>` by default; with
/// `?ns=<name>`, which the registry maps to its mirror), then to the
/// upstream itself if this Registry cannot answer.
pub fn hosts_toml(reg: &Registry, mirror: &MirrorSpec, endpoint: &str) -> String {
    // The node endpoint (localhost) is plain HTTP; an Ingress with TLS is
    // HTTPS.
    let scheme = match &reg.spec.ingress {
        Some(i) if i.tls_secret.is_some() && !reg.spec.node_endpoint.enabled => "https",
        _ => "http",
    };
    format!(
        "# Rendered by berth-operator from Registry {ns}/{reg}: put this file at\n\
         # /etc/containerd/certs.d/{name}/hosts.toml on every node (containerd's\n\
         # config_path must be /etc/containerd/certs.d).\n\
         server = \"{upstream}\"\n\
         \n\
         [host.\"{scheme}://{endpoint}\"]\n\
         \x20 capabilities = [\"pull\", \"resolve\"]\n",
        ns = reg.namespace().unwrap_or_default(),
        reg = reg.name_any(),
        name = mirror.name,
        upstream = mirror.url.trim_end_matches('/'),
    )
}

/// The ConfigMap with one `<mirror name>.hosts.toml` per mirror; None
/// without mirrors.
pub fn containerd_hosts(reg: &Registry, endpoint: &str) -> Result<Option<ConfigMap>, RenderError> {
    if reg.spec.mirrors.is_empty() {
        return Ok(None);
    }
    let data = reg
        .spec
        .mirrors
        .iter()
        .map(|m| {
            (
                format!("{}.hosts.toml", m.name),
                hosts_toml(reg, m, endpoint),
            )
        })
        .collect();
    Ok(Some(ConfigMap {
        metadata: registry_meta(reg, containerd_hosts_name(&reg.name_any()), "registry")?,
        data: Some(data),
        ..Default::default()
    }))
}
