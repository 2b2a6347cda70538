//! Specs for the pure tests (render.rs, decisions.rs): objects as the API
//! server would hand them to a controller, in namespace `team-a`.

use berth_operator::crd::{Registry, RegistrySpec, Repository, RepositorySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Registry `team-a/hub` from its spec in YAML.
pub fn registry(yaml: &str) -> Registry {
    let spec: RegistrySpec = serde_yaml::from_str(yaml).expect("spec parses");
    let mut reg = Registry::new("hub", spec);
    reg.metadata = ObjectMeta {
        name: Some("hub".into()),
        namespace: Some("team-a".into()),
        uid: Some("0000-reg-uid".into()),
        generation: Some(1),
        ..Default::default()
    };
    reg
}

/// Repository `team-a/<name>` from its spec in YAML.
pub fn repository(name: &str, yaml: &str) -> Repository {
    let spec: RepositorySpec = serde_yaml::from_str(yaml).expect("spec parses");
    let mut repo = Repository::new(name, spec);
    repo.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("team-a".into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    };
    repo
}
