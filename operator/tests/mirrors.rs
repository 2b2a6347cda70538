//! `spec.mirrors` rendered (no cluster): the registry's config and policy
//! files read back by the registry's own parsers, the password mounts, the
//! checks, and the containerd hosts.toml for the nodes.

use std::path::Path;

use berth_operator::render::*;
use kube::ResourceExt;

// Only the Registry half of the shared specs is needed here.
#[allow(dead_code)]
mod support;
use support::registry;

const MIRRORS: &str = "\
mirrors:
  - name: docker.io
    url: https://registry-1.docker.io
    repositories: ['library/*']
    maxSize: 50Gi
    tagTtlSeconds: 600
  - name: ghcr.io
    url: https://ghcr.io
    credentials: {username: bot, passwordSecret: ghcr-token, passwordKey: token}
";

#[test]
fn mirrors_reach_the_config_the_registry_loads() {
    let reg = registry(MIRRORS);
    let yaml = server_config_yaml(&reg).expect("config");
    let loaded = berth_registry::config::ServerConfig::parse(&yaml, Path::new("config.yaml"))
        .expect("berth loads the rendered config");
    assert_eq!(loaded.mirrors.len(), 2);
    let hub = &loaded.mirrors[0];
    assert_eq!(hub.name, "docker.io");
    assert_eq!(hub.url, "https://registry-1.docker.io");
    assert_eq!(hub.repositories, ["library/*"]);
    assert_eq!(hub.max_bytes, Some(50 << 30));
    assert_eq!(hub.tag_ttl_seconds, Some(600));
    assert_eq!(hub.username, None);
    let ghcr = &loaded.mirrors[1];
    assert_eq!(ghcr.username.as_deref(), Some("bot"));
    let password = ghcr.password_file.clone().expect("a password file");
    assert_eq!(ghcr.allow_push, None, "mirrors refuse pushes");

    // The password file is where the Secret's key is mounted, in the
    // registry pods and in the gc job alike.
    let o = render_registry(&reg, "rules: []\n").expect("renders");
    let pod = o
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod spec");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("ghcr-token"))
        .expect("the password Secret is a volume");
    let items = volume
        .secret
        .as_ref()
        .and_then(|s| s.items.clone())
        .expect("items");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("token", "password")
    );
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .expect("mounted");
    assert_eq!(Path::new(&mount.mount_path).join("password"), password);
    let job = o
        .gc_cronjob
        .spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .and_then(|s| s.template.spec.clone())
        .expect("job pod");
    assert!(
        job.volumes.iter().flatten().any(|v| v.name == volume.name),
        "gc evicts per mirror size and reads the same config"
    );

    // The Secret is checked before anything is rendered.
    let wanted = required_secrets(&reg);
    assert!(
        wanted
            .iter()
            .any(|s| s.name == "ghcr-token" && s.key.as_deref() == Some("token")),
        "{wanted:?}"
    );
}

#[test]
fn anonymous_pulls_only_through_public_upstreams() {
    let reg = registry(&format!("auth: {{anonymousPull: false}}\n{MIRRORS}"));
    let file = policy_file(&reg, &[], &Default::default());
    let anonymous: Vec<&String> = file
        .rules
        .iter()
        .filter(|r| r.subjects == ["anonymous"])
        .flat_map(|r| &r.repositories)
        .collect();
    // ghcr.io is behind credentials: its content may be private.
    assert_eq!(anonymous, ["docker.io/*"]);
    let yaml = policy_yaml(&file, &reg).expect("yaml");
    berth_registry::auth::Policy::parse(&yaml, Path::new("policy.yaml"))
        .expect("berth loads the rendered policy");

    let opened = registry(
        "mirrors: [{name: ghcr.io, url: 'https://ghcr.io', anonymousPull: true, credentials: {username: u, passwordSecret: s}}]\n",
    );
    let file = policy_file(&opened, &[], &Default::default());
    assert!(
        file.rules
            .iter()
            .any(|r| r.subjects == ["anonymous"] && r.repositories == ["ghcr.io/*"]),
        "anonymousPull: true opens it"
    );
    let none = policy_file(&registry("{}"), &[], &Default::default());
    assert!(none.rules.is_empty(), "no mirrors, no rule");
}

#[test]
fn nodes_get_a_hosts_toml_per_mirror() {
    let reg = registry(MIRRORS);
    let cm = containerd_hosts(&reg, "10.96.0.20:5000")
        .expect("renders")
        .expect("a ConfigMap with mirrors");
    assert_eq!(cm.name_any(), "hub-containerd-hosts");
    assert_eq!(cm.namespace().as_deref(), Some("team-a"));
    assert!(cm.owner_references().iter().any(|o| o.kind == "Registry"));
    let data = cm.data.expect("data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["docker.io.hosts.toml", "ghcr.io.hosts.toml"]
    );
    let hub = &data["docker.io.hosts.toml"];
    let parsed: toml::Table = toml::from_str(hub).expect("hosts.toml is TOML");
    assert_eq!(
        parsed["server"].as_str(),
        Some("https://registry-1.docker.io")
    );
    let host = parsed["host"]["http://10.96.0.20:5000"]
        .as_table()
        .expect("the Registry as the first host");
    assert_eq!(
        host["capabilities"].as_array().map(|a| a.len()),
        Some(2),
        "pull and resolve, never push"
    );
    assert!(hub.contains("/etc/containerd/certs.d/docker.io/hosts.toml"));

    // The node endpoint (on by default) is where nodes pull, plain HTTP on
    // localhost, even with an Ingress.
    let tls = registry(&format!(
        "ingress: {{host: reg.example.com, tlsSecret: tls}}\n{MIRRORS}"
    ));
    let cm = containerd_hosts(&tls, &endpoint(&tls, None))
        .expect("renders")
        .expect("ConfigMap");
    assert!(
        cm.data.expect("data")["ghcr.io.hosts.toml"].contains("[host.\"http://localhost:5000\"]")
    );
    // Without it, the Ingress with TLS.
    let tls = registry(&format!(
        "ingress: {{host: reg.example.com, tlsSecret: tls}}\nnodeEndpoint: {{enabled: false}}\n{MIRRORS}"
    ));
    let cm = containerd_hosts(&tls, &endpoint(&tls, None))
        .expect("renders")
        .expect("ConfigMap");
    assert!(
        cm.data.expect("data")["ghcr.io.hosts.toml"].contains("[host.\"https://reg.example.com\"]")
    );
    assert!(
        containerd_hosts(&registry("{}"), "10.0.0.1:5000")
            .expect("renders")
            .is_none()
    );
}

#[test]
fn mirrors_that_cannot_work_are_said_on_the_registry() {
    for (spec, field) in [
        (
            "mirrors: [{name: docker.io, url: 'https://a'}, {name: docker.io, url: 'https://b'}]",
            "spec.mirrors[1].name",
        ),
        (
            "mirrors: [{name: Docker.IO, url: 'https://a'}]",
            "spec.mirrors[0].name",
        ),
        (
            "mirrors: [{name: docker.io, url: 'https://a', maxSize: lots}]",
            "spec.mirrors[0].maxSize",
        ),
    ] {
        let problem = registry_problem(&registry(spec)).expect(spec);
        assert_eq!(problem.reason, "InvalidMirror", "{spec}");
        assert!(
            problem.message.starts_with(field),
            "{spec}: {}",
            problem.message
        );
    }
    assert!(registry_problem(&registry(MIRRORS)).is_none());
}
