//! Render is pure: these tests build specs, render them and check the
//! objects (no cluster). The decisions about existing objects and status
//! are in decisions.rs. (Longer than 400 lines: one test per kind of
//! object, each reading top to bottom.)

use std::collections::BTreeMap;

use berth_config::Action;
use berth_operator::crd::*;
use berth_operator::render::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

mod support;
use support::{registry, repository};

fn render(reg: &Registry) -> RegistryObjects {
    render_registry(reg, "rules: []\n").expect("renders")
}

/// Every object round-trips through JSON as its Kubernetes type, carries the
/// common labels and a controller owner reference to the Registry.
#[test]
fn every_object_is_labelled_and_owned() {
    let reg = registry(
        "replicas: 3\nstorage: {s3: {bucket: b, credentialsSecret: s3}}\ndatabase: {postgres: {urlSecret: {name: pg}}}\ningress: {host: reg.example.com, tlsSecret: tls}\nmetrics: {serviceMonitor: true}\n",
    );
    let o = render(&reg);
    let metas: Vec<(&str, &ObjectMeta)> = vec![
        ("ConfigMap", &o.config_map.metadata),
        ("Deployment", &o.deployment.metadata),
        ("Service", &o.service.metadata),
        ("Ingress", &o.ingress.as_ref().expect("ingress").metadata),
        (
            "PodDisruptionBudget",
            &o.pdb.as_ref().expect("pdb").metadata,
        ),
        ("CronJob", &o.gc_cronjob.metadata),
    ];
    for (kind, m) in metas {
        assert_eq!(m.namespace.as_deref(), Some("team-a"), "{kind}");
        let labels = m.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/instance"], "hub", "{kind}");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "berth-operator",
            "{kind}"
        );
        let owners = m.owner_references.as_ref().expect("owner refs");
        assert_eq!(owners.len(), 1, "{kind}");
        assert_eq!(owners[0].kind, "Registry");
        assert_eq!(owners[0].api_version, "berth.dev/v1alpha1");
        assert_eq!(owners[0].uid, "0000-reg-uid");
        assert_eq!(owners[0].controller, Some(true));
    }
    // Serialised objects say what they are (server-side apply needs it).
    let dep = serde_json::to_value(&o.deployment).expect("json");
    assert_eq!(dep["apiVersion"], "apps/v1");
    assert_eq!(dep["kind"], "Deployment");
    let back: Deployment = serde_json::from_value(dep).expect("parses back");
    assert_eq!(back, o.deployment);
    let sm = o.service_monitor.expect("service monitor");
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(sm["metadata"]["ownerReferences"][0]["uid"], "0000-reg-uid");
    // It scrapes the port the registry serves /metrics on: the config's
    // metrics_listen, the container's and the Service's `metrics` port.
    let port = sm["spec"]["endpoints"][0]["port"]
        .as_str()
        .expect("port name");
    let svc_port = o
        .service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.iter().find(|p| p.name.as_deref() == Some(port)))
        .expect("the Service has the ServiceMonitor's port");
    let container = &o
        .deployment
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0];
    let container_port = container
        .ports
        .as_ref()
        .and_then(|p| p.iter().find(|p| p.name.as_deref() == Some(port)))
        .expect("the container names the port");
    assert_eq!(svc_port.port, container_port.container_port);
    let config = o.config_map.data.as_ref().expect("data")["config.yaml"].clone();
    let parsed =
        berth_registry::config::ServerConfig::parse(&config, std::path::Path::new("config.yaml"))
            .expect("the registry reads its rendered config");
    let listen = parsed.metrics_listen.expect("metrics_listen set");
    assert_eq!(i32::from(listen.port()), container_port.container_port);
    assert!(
        listen.ip().is_unspecified(),
        "Prometheus scrapes from outside the pod"
    );
}

#[test]
fn deployment_selects_its_pods_and_service_selects_them_too() {
    let o = render(&registry("{}"));
    let spec = o.deployment.spec.as_ref().expect("spec");
    let selector = spec.selector.match_labels.as_ref().expect("selector");
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .expect("pod labels");
    for (k, v) in selector {
        assert_eq!(pod_labels.get(k), Some(v), "pod label {k}");
    }
    let svc_sel = o
        .service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .expect("svc selector");
    assert_eq!(svc_sel, selector);
}

#[test]
fn deployment_is_hardened_probed_and_resourced() {
    let o = render(&registry(
        "image: example.com/berth:dev\nresources: {requests: {cpu: 250m, memory: 256Mi}, limits: {memory: 1Gi}}\n",
    ));
    let pod = o
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let psc = pod.security_context.as_ref().expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("example.com/berth:dev"));
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "serve".to_string(),
                "--config".into(),
                "/etc/berth/config.yaml".into()
            ][..]
        )
    );
    let sc = c
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let live = c
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("liveness");
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    let ready = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    assert_eq!(c.ports.as_ref().expect("ports")[0].container_port, 5000);
    let res = c.resources.as_ref().expect("resources");
    assert_eq!(res.requests.as_ref().expect("requests")["cpu"].0, "250m");
    assert_eq!(res.limits.as_ref().expect("limits")["memory"].0, "1Gi");
    // The data directory and /tmp are writable volumes; the rest is read-only.
    let mounts: BTreeMap<_, _> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.as_str(), m.name.as_str()))
        .collect();
    assert_eq!(mounts["/var/lib/berth"], "data");
    assert_eq!(mounts["/tmp"], "tmp");
    assert_eq!(mounts["/etc/berth"], "config");
    let data = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .expect("data volume");
    assert_eq!(
        data.persistent_volume_claim
            .as_ref()
            .map(|p| p.claim_name.as_str()),
        Some("hub-data")
    );
    // Without an image in the spec: the operator's (its --registry-image,
    // the chart's image), else the Berth image of its own version.
    let image_of = |reg: &Registry| {
        render(reg)
            .deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };
    let img = image_of(&registry("{}"));
    assert_eq!(img, default_image());
    assert!(img.ends_with(env!("CARGO_PKG_VERSION")));
    let chart = "registry.example/berth/berth:1.2.3";
    assert_eq!(image_of(&with_default_image(&registry("{}"), chart)), chart);
    assert_eq!(
        image_of(&with_default_image(&registry("image: mine:1\n"), chart)),
        "mine:1",
        "the spec's own image wins"
    );
}

#[test]
fn config_file_has_only_fields_berth_serve_reads() {
    let reg = registry("logFormat: text\nuploadExpirySeconds: 3600\n");
    let yaml = server_config_yaml(&reg).expect("config");
    let value: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("yaml");
    let keys: Vec<String> = value
        .as_mapping()
        .expect("mapping")
        .keys()
        .map(|k| k.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "listen",
            "metrics_listen",
            "data_dir",
            "storage",
            "log_format",
            "upload_expiry_seconds",
            "policy_file",
            "token_key_file",
            "token_issuer",
            "token_expiry_seconds",
            "shutdown_timeout_seconds",
            "shutdown_delay_seconds",
        ]
    );
    assert_eq!(value["policy_file"], "/etc/berth/policy.yaml");
    assert_eq!(value["token_key_file"], "/etc/berth/token/key.pem");
    assert_eq!(value["token_issuer"], "hub");
    assert_eq!(value["token_expiry_seconds"], 300);
    assert_eq!(value["listen"], "0.0.0.0:5000");
    assert_eq!(value["data_dir"], "/var/lib/berth");
    assert_eq!(value["storage"], "filesystem");
    assert_eq!(value["log_format"], "text");
    assert_eq!(value["upload_expiry_seconds"], 3600);
    // The registry itself loads it (its parser refuses unknown fields).
    let loaded =
        berth_registry::config::ServerConfig::parse(&yaml, std::path::Path::new("config.yaml"))
            .expect("berth loads the rendered config");
    assert_eq!(loaded, server_config(&reg), "it reads back as rendered");
    let cfg = berth_registry::config::Config::new(loaded);
    assert_eq!(cfg.listen.port(), 5000);
    assert_eq!(cfg.upload_expiry.as_secs(), 3600);
    assert_eq!(
        cfg.auth.as_ref().map(|a| a.policy_file.clone()),
        Some(std::path::PathBuf::from("/etc/berth/policy.yaml"))
    );
    let with_users = server_config_yaml(&registry(
        "auth: {htpasswdSecret: users}\ningress: {host: reg.example.com, tlsSecret: tls}\n",
    ))
    .expect("config");
    assert!(with_users.contains("htpasswd_file: /etc/berth/htpasswd/htpasswd"));
    assert!(with_users.contains("public_url: https://reg.example.com"));
    for spec in [
        "{}",
        "logFormat: json\nstorage: {s3: {bucket: b, credentialsSecret: s}}\n",
    ] {
        let yaml = server_config_yaml(&registry(spec)).expect("config");
        berth_registry::config::ServerConfig::parse(&yaml, std::path::Path::new("config.yaml"))
            .expect("berth loads the rendered config");
    }
    let o = render(&reg);
    let data = o.config_map.data.as_ref().expect("data");
    assert_eq!(data["config.yaml"], yaml);
    assert_eq!(data["policy.yaml"], "rules: []\n");
}

#[test]
fn config_hash_rolls_pods_only_when_config_changes() {
    let hash = |o: &RegistryObjects| {
        o.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .map(|a| a[CONFIG_HASH_ANNOTATION].clone())
            .expect("hash annotation")
    };
    let a = render(&registry("{}"));
    let b = render(&registry("logFormat: text\n"));
    assert_eq!(hash(&a), a.config_hash);
    assert_ne!(hash(&a), hash(&b));
    // The policy file is reloaded by the server: it does not roll pods.
    let c = render_registry(&registry("{}"), "rules: [other]\n").expect("render");
    assert_eq!(hash(&a), hash(&c));
    // Same spec, same hash.
    assert_eq!(hash(&a), hash(&render(&registry("{}"))));
}

#[test]
fn pdb_only_with_more_than_one_replica() {
    assert!(render(&registry("replicas: 1\n")).pdb.is_none());
    assert!(render(&registry("replicas: 0\n")).pdb.is_none());
    let reg = registry(
        "replicas: 2\nstorage: {s3: {bucket: b, credentialsSecret: s3}}\ndatabase: {postgres: {urlSecret: {name: pg}}}\n",
    );
    let pdb = render(&reg).pdb.expect("pdb");
    let spec = pdb.spec.expect("spec");
    assert_eq!(
        spec.selector.and_then(|s| s.match_labels),
        Some(selector_labels("hub"))
    );
}

#[test]
fn storage_volume_or_s3() {
    let o = render(&registry(
        "storage: {volume: {size: 50Gi, storageClassName: fast, accessModes: [ReadWriteOnce]}}\n",
    ));
    let pvc = o.data_claim.expect("claim");
    assert_eq!(pvc.name_any(), "hub-data");
    let spec = pvc.spec.expect("spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.resources.and_then(|r| r.requests).expect("requests")["storage"].0,
        "50Gi"
    );
    assert_eq!(
        o.deployment
            .spec
            .unwrap()
            .strategy
            .unwrap()
            .type_
            .as_deref(),
        Some("Recreate")
    );
    // Default: a 10Gi claim.
    let pvc = render(&registry("{}")).data_claim.expect("default claim");
    assert_eq!(
        pvc.spec
            .and_then(|s| s.resources)
            .and_then(|r| r.requests)
            .expect("req")["storage"]
            .0,
        "10Gi"
    );
    // retainOnDelete: no owner reference, so deleting the Registry keeps it.
    let pvc = render(&registry("storage: {volume: {retainOnDelete: true}}\n"))
        .data_claim
        .expect("claim");
    assert!(pvc.metadata.owner_references.is_none());
    // S3 alone: the embedded database still needs a disk (a default claim),
    // and one pod at a time.
    let o = render(&registry(
        "storage: {s3: {bucket: b, credentialsSecret: s3creds}}\n",
    ));
    let pvc = o.data_claim.expect("a claim for the embedded database");
    assert_eq!(
        pvc.spec
            .and_then(|s| s.resources)
            .and_then(|r| r.requests)
            .expect("req")["storage"]
            .0,
        "10Gi"
    );
    let spec = o.deployment.spec.unwrap();
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate")
    );
    // PostgreSQL alone: the blobs need the claim.
    let o = render(&registry("database: {postgres: {urlSecret: {name: pg}}}\n"));
    assert!(o.data_claim.is_some());
    // S3 and PostgreSQL: no claim, an emptyDir, credentials from the Secret.
    let o = render(&registry(
        "storage: {s3: {bucket: b, credentialsSecret: s3creds}}\ndatabase: {postgres: {urlSecret: {name: pg}}}\n",
    ));
    assert!(o.data_claim.is_none());
    let pod = o.deployment.spec.unwrap().template.spec.unwrap();
    let data = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "data")
        .unwrap();
    assert!(data.empty_dir.is_some());
    let env = pod.containers[0].env.clone().unwrap();
    let key = env
        .iter()
        .find(|e| e.name == "AWS_ACCESS_KEY_ID")
        .expect("env");
    let sel = key
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secret ref");
    assert_eq!(sel.name, "s3creds");
    assert_eq!(sel.key, "accessKeyId");
}

#[test]
fn service_types_and_ingress() {
    let svc = render(&registry("{}")).service.spec.expect("spec");
    assert_eq!(svc.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(svc.ports.as_ref().unwrap()[0].port, 5000);
    let svc = render(&registry(
        "service: {type: NodePort, port: 80, nodePort: 30500}\n",
    ))
    .service
    .spec
    .expect("spec");
    assert_eq!(svc.type_.as_deref(), Some("NodePort"));
    let port = &svc.ports.unwrap()[0];
    assert_eq!((port.port, port.node_port), (80, Some(30500)));

    assert!(render(&registry("{}")).ingress.is_none());
    let reg = registry("ingress: {host: reg.example.com, className: nginx, tlsSecret: tls}\n");
    let ing = render(&reg).ingress.expect("ingress").spec.expect("spec");
    assert_eq!(ing.ingress_class_name.as_deref(), Some("nginx"));
    let rule = &ing.rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("reg.example.com"));
    let backend = rule.http.as_ref().unwrap().paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(backend.name, "hub");
    assert_eq!(ing.tls.unwrap()[0].secret_name.as_deref(), Some("tls"));
    // Pods pull from the node endpoint while it is on (the default)...
    assert_eq!(endpoint(&reg, Some("10.0.0.7")), "localhost:5000");
    assert_eq!(
        endpoint(&registry("{}"), Some("10.0.0.7")),
        "localhost:5000"
    );
    // ...else from the Ingress host, else from the Service.
    let off = "nodeEndpoint: {enabled: false}\n";
    let reg = registry(&format!("{off}ingress: {{host: reg.example.com}}\n"));
    assert_eq!(endpoint(&reg, Some("10.0.0.7")), "reg.example.com");
    assert_eq!(endpoint(&registry(off), Some("10.0.0.7")), "10.0.0.7:5000");
    assert_eq!(endpoint(&registry(off), None), "hub.team-a.svc:5000");
}

#[test]
fn gc_cronjob_runs_berth_gc_on_schedule() {
    let cj = render(&registry("gc: {schedule: '0 */6 * * *', suspend: true}\n")).gc_cronjob;
    assert_eq!(cj.name_any(), "hub-gc");
    let spec = cj.spec.expect("spec");
    assert_eq!(spec.schedule, "0 */6 * * *");
    assert_eq!(spec.suspend, Some(true));
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = spec.job_template.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers[0].args.as_ref().unwrap()[0], "gc");
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
}

#[test]
fn names_stay_within_limits() {
    let long = "a".repeat(80);
    assert!(gc_cronjob_name(&long).len() <= 52);
    assert!(retention_cronjob_name(&long).len() <= 52);
    assert!(workload_name(&long).len() <= 63);
    assert_ne!(
        bounded(&format!("{long}x"), 20),
        bounded(&format!("{long}y"), 20)
    );
    assert_eq!(bounded("short", 20), "short");
}

#[test]
fn owner_ref_needs_a_uid() {
    let mut reg = registry("{}");
    reg.metadata.uid = None;
    let err = render_registry(&reg, "").expect_err("no uid");
    assert!(err.to_string().contains("metadata.uid"), "{err}");
}

#[test]
fn policy_file_folds_repositories() {
    let reg = registry("auth: {anonymousPull: false}\n");
    let public = repository(
        "web",
        "registry: hub\nname: team/web\nvisibility: Public\naccess: [{users: [alice], groups: [devs], actions: [push, pull]}]\nimmutableTags: ['v*']\nquota: 1Gi\n",
    );
    let ci = repository(
        "ci",
        "registry: hub\nname: 'ci/*'\naccess: [{serviceAccounts: [{namespace: build, name: runner}], actions: [pull]}]\nretention: {keepLast: 10, maxAge: 30d}\n",
    );
    let other = repository("x", "registry: elsewhere\nname: x\n");
    let hash = sha256_hex(b"robot secret");
    let robots = BTreeMap::from([("team-a/ci".to_string(), hash.clone())]);
    let file = policy_file(&reg, &[public, ci, other], &robots);
    assert_eq!(
        file.repositories.len(),
        2,
        "only this registry's repositories"
    );
    assert_eq!(file.repositories[0].name, "ci/*");
    assert_eq!(file.repositories[1].quota_bytes, Some(1 << 30));
    assert_eq!(file.repositories[1].immutable_tags, ["v*"]);
    assert_eq!(
        file.repositories[0]
            .retention
            .as_ref()
            .and_then(|r| r.keep_last),
        Some(10)
    );
    assert_eq!(file.robots.len(), 1);
    assert_eq!(file.robots[0].name, "robot$team-a+ci");
    let anon = file
        .rules
        .iter()
        .find(|r| r.subjects == ["anonymous"])
        .expect("public rule");
    assert_eq!(anon.repositories, ["team/web"]);
    assert_eq!(anon.actions, [Action::Pull]);
    let users = file
        .rules
        .iter()
        .find(|r| r.subjects.contains(&"user:alice".to_string()))
        .expect("user rule");
    assert_eq!(users.subjects, ["user:alice", "group:devs"]);
    assert_eq!(users.actions, [Action::Pull, Action::Push]);
    let robot = file
        .rules
        .iter()
        .find(|r| r.subjects == ["robot:robot$team-a+ci"])
        .expect("robot rule");
    assert_eq!(robot.source.as_deref(), Some("team-a/ci"));
    let yaml = policy_yaml(&file, &reg).expect("yaml");
    // The registry loads it, and reads back exactly what was rendered.
    berth_registry::auth::Policy::parse(&yaml, std::path::Path::new("policy.yaml"))
        .expect("berth loads the rendered policy");
    let back = berth_config::PolicyFile::parse(&yaml, std::path::Path::new("policy.yaml"))
        .expect("the contract reads the rendered policy");
    assert_eq!(back, file);
    let empty = policy_yaml(&policy_file(&reg, &[], &BTreeMap::new()), &reg).expect("yaml");
    berth_registry::auth::Policy::parse(&empty, std::path::Path::new("policy.yaml"))
        .expect("berth loads an empty policy");
    let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("parses");
    assert_eq!(parsed["robots"][0]["password_sha256"], hash.as_str());
}

#[test]
fn retention_cronjob_and_pull_secret() {
    let reg = registry("image: example.com/berth:1\n");
    let repo = repository(
        "ci",
        "registry: hub\nname: 'ci/*'\nretention: {schedule: '@daily', keepLast: 5, protectTags: [latest], deleteUntagged: true}\naccess: [{serviceAccounts: [{name: runner}, {namespace: build, name: runner}], actions: [pull]}]\n",
    );
    let cj = retention_cronjob(&reg, &repo)
        .expect("render")
        .expect("cronjob");
    assert_eq!(cj.name_any(), "ci-retention");
    assert_eq!(
        cj.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Repository"
    );
    let spec = cj.spec.unwrap();
    assert_eq!(spec.schedule, "@daily");
    let c = &spec
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0];
    assert_eq!(c.image.as_deref(), Some("example.com/berth:1"));
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "retention");
    assert!(args.windows(2).any(|w| w == ["--repository", "ci/*"]));
    assert!(args.windows(2).any(|w| w == ["--keep-last", "5"]));
    assert!(args.windows(2).any(|w| w == ["--protect-tags", "latest"]));
    assert!(args.contains(&"--delete-untagged".to_string()));
    assert!(
        retention_cronjob(&reg, &repository("n", "registry: hub\nname: n\n"))
            .unwrap()
            .is_none()
    );

    let sas = granted_service_accounts(&repo);
    assert_eq!(sas.len(), 2);
    assert_eq!(sas[0].namespace.as_deref(), Some("build"));
    assert_eq!(sas[1].namespace.as_deref(), Some("team-a"));

    let s = pull_secret(
        &repo,
        "build",
        &["10.0.0.7:5000".to_string()],
        "robot$team-a+ci",
        "pw",
    );
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(s.namespace().as_deref(), Some("build"));
    assert!(s.metadata.owner_references.is_none());
    assert_eq!(s.labels()[REPOSITORY_LABEL], "team-a.ci");
    let body: serde_json::Value =
        serde_json::from_slice(&s.data.unwrap()[".dockerconfigjson"].0).expect("json");
    let auth = &body["auths"]["10.0.0.7:5000"];
    assert_eq!(auth["username"], "robot$team-a+ci");
    assert_eq!(auth["auth"], "cm9ib3QkdGVhbS1hK2NpOnB3"); // base64("robot$team-a+ci:pw")
}

/// A quota the registry cannot hold (more than a u64 of bytes) is left out
/// of the policy file, like one that is not a quantity: never truncated.
#[test]
fn quotas_beyond_u64_are_left_out_of_the_policy() {
    let reg = registry("{}");
    let repos = [
        repository("ok", "registry: hub\nname: ok\nquota: 15Ei\n"),
        repository("huge", "registry: hub\nname: huge\nquota: 16Ei\n"),
        repository("e30", "registry: hub\nname: e30\nquota: 1e30\n"),
        repository("bad", "registry: hub\nname: bad\nquota: 10GB\n"),
    ];
    let file = policy_file(&reg, &repos, &BTreeMap::new());
    let names: Vec<&str> = file.repositories.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
    assert_eq!(file.repositories[0].quota_bytes, Some(15 << 60));
    let yaml = policy_yaml(&file, &reg).expect("yaml");
    berth_registry::auth::Policy::parse(&yaml, std::path::Path::new("policy.yaml"))
        .expect("berth loads the rendered policy");
}
