//! A Registry with replicas on PostgreSQL and S3, without a cluster: the
//! objects it becomes for 1 and 3 replicas, what scaling changes (only
//! `spec.replicas` and the disruption budget), the one token key every
//! replica signs with, and which dependency the status blames from what
//! the pods' `/readyz` say.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_operator::controller::credentials::generate_signing_key;
use berth_operator::crd::*;
use berth_operator::render::*;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

// (Its Repository specs are for the other test targets.)
#[allow(dead_code)]
mod support;
use support::registry;

const HA: &str = "storage: {s3: {bucket: blobs, endpoint: 'http://versitygw.storage:7070', credentialsSecret: s3}}\ndatabase: {postgres: {urlSecret: {name: pg}}}\n";

fn ha(replicas: i32) -> Registry {
    registry(&format!("replicas: {replicas}\n{HA}"))
}

fn render(reg: &Registry) -> RegistryObjects {
    render_registry(reg, "rules: []\n").expect("renders")
}

fn pod_spec(o: &RegistryObjects) -> PodSpec {
    o.deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod spec")
}

fn volume<'a>(pod: &'a PodSpec, name: &str) -> &'a Volume {
    pod.volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

#[test]
fn three_replicas_on_postgres_and_s3() {
    let o = render(&ha(3));
    assert!(o.data_claim.is_none(), "nothing is kept on a claim");
    let spec = o.deployment.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    // A new pod gets ready before an old one stops.
    let strategy = spec.strategy.expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.expect("rollingUpdate");
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));

    let pod = pod_spec(&o);
    assert!(volume(&pod, "data").empty_dir.is_some());
    assert!(volume(&pod, "data").persistent_volume_claim.is_none());
    // The one token key of the Registry, mounted where the config points.
    let key = volume(&pod, "token-key").secret.as_ref().expect("secret");
    assert_eq!(key.secret_name.as_deref(), Some("hub-token-key"));
    let c = &pod.containers[0];
    let mounts: BTreeMap<_, _> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), (m.mount_path.as_str(), m.read_only)))
        .collect();
    assert_eq!(mounts["token-key"], ("/etc/berth/token", Some(true)));
    assert_eq!(mounts["data"].0, "/var/lib/berth");
    // Readiness is the registry's /readyz (both stores), liveness /healthz.
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(path(&c.liveness_probe).as_deref(), Some("/healthz"));
    // A pod that could not start says why in its status.
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    // SIGTERM: 5 s out of the Service, 30 s for open requests, then exit;
    // the kubelet waits longer than both.
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(TERMINATION_GRACE_SECONDS)
    );
    assert!(TERMINATION_GRACE_SECONDS > (SHUTDOWN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS) as i64);
    // Secrets as variables, never in the config file.
    let env: BTreeMap<_, _> = c
        .env
        .iter()
        .flatten()
        .map(|e| {
            let from = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| format!("{}/{}", s.name, s.key));
            (
                e.name.as_str(),
                from.or(e.value.clone()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(env["BERTH_CONFIG"], "/etc/berth/config.yaml");
    assert_eq!(env["BERTH_DATABASE_URL"], "pg/url");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "s3/accessKeyId");
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "s3/secretAccessKey");

    // One disruption at a time.
    let pdb = o.pdb.expect("pdb").spec.expect("spec");
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(
        pdb.selector.and_then(|s| s.match_labels),
        Some(selector_labels("hub"))
    );

    // The config the registry reads: what the pods were told.
    let yaml = o.config_map.data.as_ref().expect("data")["config.yaml"].clone();
    let parsed =
        berth_registry::config::ServerConfig::parse(&yaml, std::path::Path::new("config.yaml"))
            .expect("the registry reads its rendered config");
    parsed
        .validate(std::path::Path::new("config.yaml"))
        .expect("valid");
    assert_eq!(parsed.storage, Some(berth_config::StorageBackend::S3));
    assert_eq!(parsed.s3.bucket.as_deref(), Some("blobs"));
    assert_eq!(
        parsed.s3.endpoint.as_deref(),
        Some("http://versitygw.storage:7070")
    );
    assert_eq!(parsed.database_url, None, "the URL comes from its Secret");
    assert_eq!(
        parsed.token_key_file.as_deref(),
        Some(std::path::Path::new("/etc/berth/token/key.pem"))
    );
    assert_eq!(parsed.shutdown_delay_seconds, Some(SHUTDOWN_DELAY_SECONDS));
    assert_eq!(
        parsed.shutdown_timeout_seconds,
        Some(SHUTDOWN_TIMEOUT_SECONDS)
    );
    assert_eq!(parsed.gc_interval_seconds, None, "gc runs in its CronJob");
    // With the environment the pods get, the registry opens PostgreSQL
    // and the bucket, and keeps its token key where the Secret is mounted.
    let mut with_env = parsed.clone();
    with_env.database_url = Some("postgres://berth@db/berth".into());
    let cfg = berth_registry::config::Config::new(with_env);
    assert!(matches!(
        cfg.metadata,
        berth_registry::config::Metadata::Postgres { .. }
    ));
    assert!(matches!(cfg.blobs, berth_registry::config::Blobs::S3(_)));
    assert_eq!(
        cfg.auth.expect("access control").token_key_file,
        std::path::PathBuf::from("/etc/berth/token/key.pem")
    );
    assert_eq!(cfg.shutdown_delay, Duration::from_secs(5));

    // The gc CronJob reaches the same stores the same way.
    let job = o
        .gc_cronjob
        .spec
        .and_then(|s| s.job_template.spec)
        .and_then(|j| j.template.spec)
        .expect("job pod");
    assert!(volume(&job, "data").empty_dir.is_some());
    assert_eq!(job.containers[0].env, c.env);
}

#[test]
fn one_replica_on_postgres_and_s3_is_the_same_deployment_without_a_budget() {
    let one = render(&ha(1));
    let three = render(&ha(3));
    assert!(one.data_claim.is_none());
    assert!(one.pdb.is_none(), "no budget for a single pod");
    let spec = one.deployment.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy,
        three
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.strategy.clone()),
        "RollingUpdate with maxUnavailable 0: a config change starts the new pod first"
    );
}

/// Scaling changes `spec.replicas` of the Deployment and whether there is a
/// disruption budget, nothing else: the pod template (and so every running
/// pod) stays as it is.
#[test]
fn scaling_changes_only_replicas() {
    let base = render(&ha(3));
    for n in [0, 1, 2, 5, 100] {
        let o = render(&ha(n));
        let mut dep = o.deployment.clone();
        assert_eq!(dep.spec.as_ref().and_then(|s| s.replicas), Some(n));
        dep.spec.as_mut().expect("spec").replicas = Some(3);
        assert_eq!(
            dep, base.deployment,
            "replicas {n}: only spec.replicas differs"
        );
        assert_eq!(o.config_hash, base.config_hash);
        assert_eq!(o.config_map, base.config_map);
        assert_eq!(o.service, base.service);
        assert_eq!(o.gc_cronjob, base.gc_cronjob);
        assert_eq!(o.data_claim, base.data_claim);
        assert_eq!(o.pdb.is_some(), n > 1, "replicas {n}");
        if let Some(pdb) = &o.pdb {
            assert_eq!(Some(pdb), base.pdb.as_ref());
        }
    }
}

#[test]
fn s3_and_postgres_settings_reach_the_config() {
    let reg = registry(
        "replicas: 2\nstorage: {s3: {bucket: shared, endpoint: 'https://s3.internal', region: eu-west-1, prefix: prod, pathStyle: false, redirect: true, publicEndpoint: 'https://s3.example.com', credentialsSecret: s3}}\ndatabase: {postgres: {urlSecret: {name: pg, key: dsn}, poolSize: 8}}\n",
    );
    let config = server_config(&reg);
    let s3 = &config.s3;
    assert_eq!(s3.bucket.as_deref(), Some("shared"));
    assert_eq!(s3.endpoint.as_deref(), Some("https://s3.internal"));
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.prefix.as_deref(), Some("prod"));
    assert_eq!(s3.path_style, Some(false));
    assert_eq!(s3.redirect, Some(true));
    assert_eq!(
        s3.public_endpoint.as_deref(),
        Some("https://s3.example.com")
    );
    assert_eq!(
        (&s3.access_key_id_file, &s3.secret_access_key_file),
        (&None, &None),
        "credentials come as AWS_* variables"
    );
    assert_eq!(config.database_pool_size, Some(8));
    let yaml = server_config_yaml(&reg).expect("yaml");
    let parsed =
        berth_registry::config::ServerConfig::parse(&yaml, std::path::Path::new("config.yaml"))
            .expect("the registry reads it");
    assert_eq!(parsed, config);
    parsed
        .validate(std::path::Path::new("config.yaml"))
        .expect("valid");
    let env = env_of(&reg);
    assert_eq!(env["BERTH_DATABASE_URL"], "pg/dsn");
    // Redirect off is left out (the registry's default).
    let plain = server_config(&ha(1));
    assert_eq!(plain.s3.redirect, None);
    assert_eq!(plain.s3.prefix, None);
    assert_eq!(plain.database_pool_size, None);
}

fn env_of(reg: &Registry) -> BTreeMap<String, String> {
    pod_spec(&render(reg)).containers[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((e.name.clone(), format!("{}/{}", s.name, s.key)))
        })
        .collect()
}

/// The Secret the operator makes once holds a key every replica loads, and
/// a token one replica signs is accepted by another.
#[test]
fn one_token_key_for_every_replica() {
    let pem = generate_signing_key().expect("key");
    let secret = token_key_secret(&ha(3), &pem).expect("secret");
    assert_eq!(secret.name_any(), "hub-token-key");
    assert_eq!(
        secret.metadata.owner_references.as_ref().expect("owner")[0].uid,
        "0000-reg-uid"
    );
    let data = secret.data.expect("data");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["key.pem"]);

    // The Secret's key.pem, as the pods see it at token_key_file.
    let dir = std::env::temp_dir().join(format!("berth-operator-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("key.pem");
    std::fs::write(&path, &data["key.pem"].0).expect("write");
    use berth_registry::auth::{Access, TokenService};
    TokenService::check_key(&path).expect("the registry reads the key");
    let replica = |_| {
        TokenService::new(&path, "hub", "berth", Duration::from_secs(300)).expect("token service")
    };
    let (a, b) = (replica(1), replica(2));
    let (token, _) = a
        .issue(
            "alice",
            vec![Access {
                kind: "repository".into(),
                name: "team/app".into(),
                actions: vec!["pull".into()],
            }],
        )
        .expect("issue");
    let claims = b.verify(&token).expect("another replica accepts it");
    assert!(claims.grants("team/app", "pull"));
    // The file was read, not replaced.
    assert_eq!(std::fs::read(&path).expect("read"), data["key.pem"].0);
    // A key of another Registry (or a regenerated one) is refused.
    std::fs::write(&path, generate_signing_key().expect("key")).expect("write");
    assert!(replica(3).verify(&token).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- what the pods' /readyz say ----

fn pod(name: &str, phase: &str, ready: bool, ip: Option<&str>) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.spec = Some(PodSpec {
        containers: vec![Container {
            name: "registry".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 5000,
                ..Default::default()
            }]),
            ..Default::default()
        }],
        ..Default::default()
    });
    p.status = Some(PodStatus {
        phase: Some(phase.into()),
        pod_ip: ip.map(str::to_string),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

#[test]
fn only_running_unready_pods_are_asked() {
    let mut terminating = pod("hub-e", "Running", false, Some("10.0.0.5"));
    terminating.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let mut other_port = pod("hub-a", "Running", false, Some("fd00::7"));
    other_port.spec.as_mut().expect("spec").containers[0].ports = Some(vec![ContainerPort {
        name: Some("http".into()),
        container_port: 8080,
        ..Default::default()
    }]);
    let pods = [
        pod("hub-c", "Running", false, Some("10.0.0.3")),
        pod("hub-b", "Running", true, Some("10.0.0.2")),
        pod("hub-d", "Pending", false, None),
        pod("hub-f", "Running", false, None),
        terminating,
        other_port,
    ];
    let targets = probe_targets(&pods);
    assert_eq!(
        targets,
        [
            ProbeTarget {
                pod: "hub-a".into(),
                ip: "fd00::7".into(),
                port: 8080
            },
            ProbeTarget {
                pod: "hub-c".into(),
                ip: "10.0.0.3".into(),
                port: 5000
            },
        ]
    );
    assert_eq!(targets[0].url(), "http://[fd00::7]:8080/readyz");
    assert_eq!(targets[1].url(), "http://10.0.0.3:5000/readyz");
    // However many replicas, a bounded number of requests.
    let many: Vec<Pod> = (0..50)
        .map(|i| pod(&format!("hub-{i:02}"), "Running", false, Some("10.0.1.1")))
        .collect();
    assert_eq!(probe_targets(&many).len(), MAX_PROBES);
    // Asked only while the rollout is not complete.
    let reg = ha(3);
    let rollout = |ready, updated| Rollout {
        ready,
        updated,
        observed: true,
    };
    assert!(!should_probe(&reg, rollout(3, 3), None));
    assert!(should_probe(&reg, rollout(2, 3), None));
    assert!(should_probe(&reg, rollout(3, 2), None));
    assert!(!should_probe(&ha(0), rollout(0, 0), None));
    // The node endpoint not rolled out yet: its pods are looked at too.
    let node = |ready| NodeRollout {
        desired: 2,
        ready,
        updated: 2,
        observed: true,
    };
    assert!(!should_probe(&reg, rollout(3, 3), Some(node(2))));
    assert!(should_probe(&reg, rollout(3, 3), Some(node(1))));
}

/// The bodies as `berth serve` writes them (registry/src/http/mod.rs) and
/// as berth-config names them.
#[test]
fn readyz_answers_mean_what_the_registry_says() {
    use berth_config::readyz;
    assert_eq!(readiness_of(200, "ready"), PodReadiness::Ready);
    assert_eq!(readiness_of(200, readyz::READY), PodReadiness::Ready);
    assert_eq!(
        readiness_of(503, "shutting down"),
        PodReadiness::ShuttingDown
    );
    let down = |metadata, blobs| PodReadiness::StoresDown { metadata, blobs };
    assert_eq!(
        readiness_of(503, "metadata store unreachable"),
        down(true, false)
    );
    assert_eq!(
        readiness_of(503, "blob store unreachable\n"),
        down(false, true)
    );
    assert_eq!(
        readiness_of(503, "metadata store unreachable; blob store unreachable"),
        down(true, true)
    );
    let both = [readyz::METADATA_UNREACHABLE, readyz::BLOBS_UNREACHABLE].join(readyz::SEPARATOR);
    assert_eq!(readiness_of(503, &both), down(true, true));
    // Anything else tells nothing about the dependencies.
    for (status, body) in [
        (503, "metadata store unreachable; disk on fire"),
        (503, ""),
        (500, "metadata store unreachable"),
        (404, "not found"),
        (200, "ok"),
    ] {
        assert!(
            matches!(readiness_of(status, body), PodReadiness::Unknown(_)),
            "{status} {body:?}"
        );
    }
}

#[test]
fn the_failing_dependency_is_named() {
    let reg = ha(3);
    let down = |metadata, blobs| PodReadiness::StoresDown { metadata, blobs };
    let answers = |list: &[(&str, PodReadiness)]| -> Vec<(String, PodReadiness)> {
        list.iter()
            .map(|(p, r)| (p.to_string(), r.clone()))
            .collect()
    };
    // Nothing down: starting, shutting down, no answer, ready by now.
    assert_eq!(
        dependency_outage(
            &reg,
            &answers(&[
                ("hub-a", PodReadiness::ShuttingDown),
                ("hub-b", PodReadiness::Unknown("no answer".into())),
                ("hub-c", PodReadiness::Ready),
            ])
        ),
        None
    );
    assert_eq!(dependency_outage(&reg, &[]), None);

    let o = dependency_outage(
        &reg,
        &answers(&[
            ("hub-a", down(true, false)),
            ("hub-b", PodReadiness::Unknown("no answer".into())),
            ("hub-c", down(true, false)),
        ]),
    )
    .expect("outage");
    assert_eq!(o.reason, "DatabaseUnreachable");
    assert_eq!(
        o.message,
        "PostgreSQL (the URL in Secret pg, key url) does not answer pods hub-a, hub-c; those pods are out of the Service (their /readyz answers 503) until it does"
    );

    let o = dependency_outage(&reg, &answers(&[("hub-b", down(false, true))])).expect("outage");
    assert_eq!(o.reason, "StorageUnreachable");
    assert_eq!(
        o.message,
        "bucket blobs at http://versitygw.storage:7070 does not answer pod hub-b; those pods are out of the Service (their /readyz answers 503) until it does"
    );

    // Both: the database is the reason, the message names both.
    let o = dependency_outage(
        &reg,
        &answers(&[("hub-a", down(true, true)), ("hub-b", down(false, true))]),
    )
    .expect("outage");
    assert_eq!(o.reason, "DatabaseUnreachable");
    assert!(o.message.starts_with("PostgreSQL (the URL in Secret pg, key url) does not answer pod hub-a; bucket blobs at http://versitygw.storage:7070 does not answer pods hub-a, hub-b;"), "{}", o.message);

    // The embedded stores are named as such.
    let o = dependency_outage(&registry("{}"), &answers(&[("hub-a", down(true, true))]))
        .expect("outage");
    assert!(
        o.message
            .contains("the embedded database (on the data volume)")
            && o.message.contains("the data volume does not answer"),
        "{}",
        o.message
    );
}

#[test]
fn an_outage_is_ready_false_and_degraded_with_its_reason() {
    let reg = ha(3);
    let hash = "0123456789abcdef";
    let outage = Outage {
        reason: "DatabaseUnreachable",
        message: "PostgreSQL does not answer pods hub-a, hub-b, hub-c".into(),
    };
    let rollout = Rollout {
        ready: 0,
        updated: 3,
        observed: true,
    };
    let c = registry_conditions(&reg, rollout, None, "e", hash, &[], Some(&outage));
    let get = |t: &str| c.iter().find(|c| c.type_ == t).expect("condition").clone();
    let ready = get("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DatabaseUnreachable")
    );
    assert_eq!(
        ready.message,
        "0 of 3 registry pods are ready: PostgreSQL does not answer pods hub-a, hub-b, hub-c"
    );
    let degraded = get("Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "DatabaseUnreachable")
    );
    assert_eq!(degraded.message, outage.message);
    assert!(!registry_settled(&reg, rollout, None, &[], Some(&outage)));
    // With notes: the outage first, the notes after.
    let notes = vec!["ServiceMonitor CRD missing".to_string()];
    let c = registry_conditions(&reg, rollout, None, "e", hash, &notes, Some(&outage));
    let degraded = c.iter().find(|c| c.type_ == "Degraded").expect("degraded");
    assert_eq!(
        degraded.message,
        format!("{}; ServiceMonitor CRD missing", outage.message)
    );
    // One Warning Event per outage, not one per reconcile while it lasts.
    assert!(outage_is_new(&outage, &[]));
    assert!(!outage_is_new(&outage, &c));
    let storage = Outage {
        reason: "StorageUnreachable",
        message: "bucket".into(),
    };
    assert!(outage_is_new(&storage, &c));
    // Back: Degraded false again.
    let c = registry_conditions(
        &reg,
        Rollout {
            ready: 3,
            updated: 3,
            observed: true,
        },
        None,
        "e",
        hash,
        &[],
        None,
    );
    let degraded = c.iter().find(|c| c.type_ == "Degraded").expect("degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("False", "AsExpected")
    );
}
