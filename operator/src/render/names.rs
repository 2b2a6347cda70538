//! Names of the objects the operator creates, derived from the custom
//! resource's name and kept within Kubernetes' length limits.

use super::sha256_hex;

/// Shortens `name` to at most `max` characters, replacing the tail with a
/// hash of the whole so that distinct long names stay distinct.
pub fn bounded(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = &sha256_hex(name.as_bytes())[..8];
    let keep = max.saturating_sub(hash.len() + 1);
    let head = name[..keep].trim_end_matches(['-', '.']);
    format!("{head}-{hash}")
}

/// Deployment, Service, Ingress, PodDisruptionBudget, ServiceMonitor.
pub fn workload_name(registry: &str) -> String {
    bounded(registry, 55)
}

pub fn config_map_name(registry: &str) -> String {
    format!("{}-config", bounded(registry, 56))
}

pub fn data_claim_name(registry: &str) -> String {
    format!("{}-data", bounded(registry, 58))
}

pub fn token_key_secret_name(registry: &str) -> String {
    format!("{}-token-key", bounded(registry, 53))
}

/// CronJob names are limited to 52 characters (the Job name adds 11).
pub fn gc_cronjob_name(registry: &str) -> String {
    format!("{}-gc", bounded(registry, 49))
}

pub fn retention_cronjob_name(repository: &str) -> String {
    format!("{}-retention", bounded(repository, 42))
}

/// The Secret holding a Repository's robot credential (its own namespace).
pub fn robot_secret_name(repository: &str) -> String {
    format!("{}-robot", bounded(repository, 57))
}

/// The robot's user name in the registry's policy file.
pub fn robot_user(namespace: &str, repository: &str) -> String {
    format!("robot${namespace}+{repository}")
}

/// The dockerconfigjson Secret a grant puts in a ServiceAccount's namespace.
pub fn pull_secret_name(repo_namespace: &str, repository: &str) -> String {
    bounded(&format!("berth-pull-{repo_namespace}-{repository}"), 253)
}
