//! What the controllers decide, without a cluster: what a spec needs to
//! work, how an existing claim is kept, the conditions and status they
//! write, the ServiceAccount edits. The controllers only fetch the inputs
//! and apply the outputs (tests/cluster.rs runs them against an API server).

use std::collections::BTreeMap;

use berth_operator::crd::*;
use berth_operator::render::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

mod support;
use support::{registry, repository};

fn condition_of<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

fn secret(keys: &[&str]) -> Secret {
    Secret {
        data: Some(
            keys.iter()
                .map(|k| (k.to_string(), ByteString(b"x".to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[test]
fn registry_specs_that_cannot_work() {
    assert_eq!(registry_problem(&registry("{}")), None);
    let p = registry_problem(&registry("gc: {schedule: 'every day'}\n")).expect("problem");
    assert_eq!(p.reason, "InvalidSchedule");
    assert!(
        p.message.starts_with("spec.gc.schedule \"every day\": "),
        "{}",
        p.message
    );
    let p = registry_problem(&registry("storage: {volume: {size: 10GB}}\n")).expect("problem");
    assert_eq!(p.reason, "InvalidStorageSize");
    assert!(
        p.message.starts_with("spec.storage.volume.size: "),
        "{}",
        p.message
    );
}

#[test]
fn the_secrets_a_registry_needs() {
    assert!(required_secrets(&registry("{}")).is_empty());
    let reg = registry(
        "auth: {htpasswdSecret: users}\nstorage: {s3: {bucket: b, credentialsSecret: s3}}\ndatabase: {postgres: {urlSecret: {name: pg, key: dsn}}}\ningress: {host: h, tlsSecret: tls}\n",
    );
    let required = required_secrets(&reg);
    let wanted: Vec<(&str, &str, Option<&str>)> = required
        .iter()
        .map(|r| (r.field, r.name.as_str(), r.key.as_deref()))
        .collect();
    assert_eq!(
        wanted,
        [
            ("spec.auth.htpasswdSecret", "users", Some("htpasswd")),
            (
                "spec.storage.s3.credentialsSecret",
                "s3",
                Some("accessKeyId")
            ),
            (
                "spec.storage.s3.credentialsSecret",
                "s3",
                Some("secretAccessKey")
            ),
            ("spec.database.postgres.urlSecret", "pg", Some("dsn")),
            ("spec.ingress.tlsSecret", "tls", None),
        ]
    );
    let htpasswd = &required[0];
    let p = secret_problem("team-a", htpasswd, None).expect("missing");
    assert_eq!(p.reason, "SecretNotFound");
    assert_eq!(
        p.message,
        "spec.auth.htpasswdSecret: Secret team-a/users does not exist; create it and the registry will be deployed"
    );
    let p = secret_problem("team-a", htpasswd, Some(&secret(&["other"]))).expect("no key");
    assert_eq!(p.reason, "SecretKeyMissing");
    assert_eq!(
        p.message,
        "spec.auth.htpasswdSecret: Secret team-a/users has no key \"htpasswd\""
    );
    assert_eq!(
        secret_problem("team-a", htpasswd, Some(&secret(&["htpasswd"]))),
        None
    );
    // stringData counts too (a Secret not yet normalised by the API server).
    let string_data = Secret {
        string_data: Some(BTreeMap::from([("htpasswd".into(), "x".into())])),
        ..Default::default()
    };
    assert_eq!(secret_problem("team-a", htpasswd, Some(&string_data)), None);
    // A TLS Secret only has to exist.
    assert_eq!(
        secret_problem("team-a", &required[4], Some(&Secret::default())),
        None
    );
}

fn claim_of(reg: &Registry) -> k8s_openapi::api::core::v1::PersistentVolumeClaim {
    render_registry(reg, "")
        .expect("renders")
        .data_claim
        .expect("claim")
}

fn size(pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim) -> String {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .map(|r| r["storage"].0.clone())
        .expect("size")
}

#[test]
fn claims_only_grow_and_keep_class_and_access_modes() {
    let existing = claim_of(&registry(
        "storage: {volume: {size: 20Gi, storageClassName: fast}}\n",
    ));
    // Growing, same class: applied as the spec says.
    let mut want = claim_of(&registry(
        "storage: {volume: {size: 30Gi, storageClassName: fast}}\n",
    ));
    assert_eq!(keep_existing_claim(&mut want, &existing), None);
    assert_eq!(size(&want), "30Gi");
    // Shrinking: the claim stays, and status says so.
    let mut want = claim_of(&registry(
        "storage: {volume: {size: 10Gi, storageClassName: fast}}\n",
    ));
    let note = keep_existing_claim(&mut want, &existing).expect("note");
    assert_eq!(size(&want), "20Gi");
    assert_eq!(
        note,
        "PersistentVolumeClaim hub-data stays at 20Gi: the spec asks for 10Gi, and claims are never shrunk (data would be lost)"
    );
    // Another class or access modes: kept, with a note each.
    let mut want = claim_of(&registry(
        "storage: {volume: {size: 20Gi, storageClassName: slow, accessModes: [ReadWriteMany]}}\n",
    ));
    let note = keep_existing_claim(&mut want, &existing).expect("note");
    let spec = want.spec.as_ref().expect("spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_string()][..])
    );
    assert!(note.contains("keeps storage class \"fast\""), "{note}");
    assert!(
        note.contains("keeps access modes [\"ReadWriteOnce\"]"),
        "{note}"
    );
    // No class in the spec: the one the cluster chose is kept silently.
    let mut want = claim_of(&registry("storage: {volume: {size: 20Gi}}\n"));
    assert_eq!(keep_existing_claim(&mut want, &existing), None);
    assert_eq!(
        want.spec.and_then(|s| s.storage_class_name).as_deref(),
        Some("fast")
    );
    // A size that is not a quantity on the existing claim: left to the API server.
    let mut odd = existing.clone();
    if let Some(r) = odd
        .spec
        .as_mut()
        .and_then(|s| s.resources.as_mut())
        .and_then(|r| r.requests.as_mut())
    {
        r.insert("storage".into(), Quantity("lots".into()));
    }
    let mut want = claim_of(&registry(
        "storage: {volume: {size: 1Gi, storageClassName: fast}}\n",
    ));
    assert_eq!(keep_existing_claim(&mut want, &odd), None);
    assert_eq!(size(&want), "1Gi");
}

fn deployment(generation: i64, observed: i64, ready: i32, updated: i32) -> Deployment {
    let mut d = Deployment::default();
    d.metadata.generation = Some(generation);
    d.status = Some(DeploymentStatus {
        observed_generation: Some(observed),
        ready_replicas: Some(ready),
        updated_replicas: Some(updated),
        ..Default::default()
    });
    d
}

#[test]
fn registry_conditions_follow_the_rollout() {
    let reg = registry("{}");
    let hash = "0123456789abcdef0123";
    assert_eq!(Rollout::of(None), Rollout::default());

    let rolling = Rollout::of(Some(&deployment(2, 1, 1, 0)));
    assert!(!rolling.complete(1));
    let c = registry_conditions(&reg, rolling, None, "10.0.0.7:5000", hash, &[], None);
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PodsNotReady")
    );
    assert_eq!(
        ready.message,
        "1 of 1 registry pods are ready (Deployment team-a/hub); see `kubectl -n team-a describe deployment hub`"
    );
    let progressing = condition_of(&c, "Progressing");
    assert_eq!(progressing.reason, "RollingOut");
    assert_eq!(
        progressing.message,
        "0 of 1 pods run the current config 0123456789ab"
    );
    assert!(!registry_settled(&reg, rolling, None, &[], None));

    let done = Rollout::of(Some(&deployment(2, 2, 1, 1)));
    let c = registry_conditions(&reg, done, None, "10.0.0.7:5000", hash, &[], None);
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Available")
    );
    assert_eq!(
        ready.message,
        "1 of 1 registry pods are ready; pull from 10.0.0.7:5000"
    );
    assert_eq!(
        condition_of(&c, "Progressing").message,
        "Deployment team-a/hub runs config 0123456789ab"
    );
    assert_eq!(condition_of(&c, "Degraded").reason, "AsExpected");
    assert!(registry_settled(&reg, done, None, &[], None));

    // What was kept against the spec: Degraded, and looked at again soon.
    let notes = vec!["claim kept".to_string()];
    let c = registry_conditions(&reg, done, None, "e", hash, &notes, None);
    let degraded = condition_of(&c, "Degraded");
    assert_eq!(
        (
            degraded.status.as_str(),
            degraded.reason.as_str(),
            degraded.message.as_str()
        ),
        ("True", "PartiallyApplied", "claim kept")
    );
    assert!(!registry_settled(&reg, done, None, &notes, None));

    let zero = registry("replicas: 0\n");
    let c = registry_conditions(&zero, Rollout::default(), None, "e", hash, &[], None);
    assert_eq!(condition_of(&c, "Ready").reason, "ScaledToZero");
    assert_eq!(condition_of(&c, "Progressing").reason, "RolloutComplete");
}

#[test]
fn registry_status_keeps_what_a_problem_did_not_reach() {
    let mut reg = registry("{}");
    let mut old = condition("Ready", true, "Available", "1 of 1");
    old.last_transition_time = "2020-01-01T00:00:00Z".into();
    reg.status = Some(RegistryStatus {
        conditions: vec![old],
        observed_generation: Some(0),
        ready_replicas: 1,
        endpoint: Some("10.0.0.7:5000".into()),
        config_hash: Some("abc".into()),
    });
    let problem = Problem::new("SecretNotFound", "spec.auth.htpasswdSecret: gone");
    let s = registry_status(&reg, problem.conditions(), None);
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.ready_replicas, 1);
    assert_eq!(s.endpoint.as_deref(), Some("10.0.0.7:5000"));
    assert_eq!(s.config_hash.as_deref(), Some("abc"));
    let ready = condition_of(&s.conditions, "Ready");
    assert_eq!(ready.reason, "SecretNotFound");
    assert_ne!(ready.last_transition_time, "2020-01-01T00:00:00Z");
    assert_eq!(ready.observed_generation, Some(1));

    let observed = RegistryObserved {
        ready_replicas: 2,
        endpoint: "reg.example.com".into(),
        config_hash: "def".into(),
    };
    let conditions = vec![condition("Ready", true, "Available", "2 of 2")];
    let s = registry_status(&reg, conditions, Some(observed));
    assert_eq!(s.ready_replicas, 2);
    assert_eq!(s.endpoint.as_deref(), Some("reg.example.com"));
    assert_eq!(s.config_hash.as_deref(), Some("def"));
    // Ready stayed True: its transition time is the old one.
    assert_eq!(s.conditions[0].last_transition_time, "2020-01-01T00:00:00Z");
}

#[test]
fn repository_specs_that_cannot_work() {
    assert_eq!(
        repository_problem(&repository("ok", "registry: hub\nname: ok\nquota: 20Gi\n")),
        None
    );
    let p = repository_problem(&repository(
        "r",
        "registry: hub\nname: r\nretention: {schedule: 'soon'}\n",
    ))
    .expect("problem");
    assert_eq!(p.reason, "InvalidSchedule");
    for quota in ["10GB", "16Ei", "1e30"] {
        let p = repository_problem(&repository(
            "q",
            &format!("registry: hub\nname: q\nquota: {quota}\n"),
        ))
        .expect("problem");
        assert_eq!(p.reason, "InvalidQuota", "{quota}");
        assert!(p.message.starts_with("spec.quota: "), "{}", p.message);
    }
    let p = registry_missing(&repository("r", "registry: nope\nname: r\n"), "team-a");
    assert_eq!(p.reason, "RegistryNotFound");
    assert_eq!(
        p.message,
        "spec.registry: there is no Registry team-a/nope; create it or fix the name"
    );
}

#[test]
fn repository_conditions_and_status() {
    let mut repo = repository("ci", "registry: hub\nname: ci\nretention: {keepLast: 3}\n");
    let served = Serving::Served { pods: 2 };
    let c = repository_conditions(&repo, 2, &[], &served);
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Configured")
    );
    assert_eq!(
        ready.message,
        "served by 2 registry pod(s) of Registry team-a/hub; 2 pull Secret(s); retention CronJob ci-retention"
    );
    assert_eq!(condition_of(&c, "Degraded").reason, "AsExpected");
    assert_eq!(condition_of(&c, "Progressing").status, "False");

    // Not usable yet: Ready false, Progressing true, nothing degraded.
    for (serving, reason, says) in [
        (
            Serving::NotRendered,
            "PolicyPending",
            "not in the policy file of Registry team-a/hub yet",
        ),
        (
            Serving::Loading {
                serving: 1,
                pods: 3,
            },
            "PolicyPending",
            "1 of 3 ready registry pod(s) of Registry team-a/hub serve its rules",
        ),
        (
            Serving::NoPods,
            "RegistryNotReady",
            "no pod of Registry team-a/hub is ready",
        ),
    ] {
        let c = repository_conditions(&repo, 0, &[], &serving);
        let ready = condition_of(&c, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason)
        );
        assert!(ready.message.contains(says), "{}", ready.message);
        assert_eq!(condition_of(&c, "Progressing").status, "True");
        assert_eq!(condition_of(&c, "Degraded").status, "False");
    }

    // What the spec waits for comes first, even when the rules are served.
    let notes = [service_account_missing(
        "build",
        "runner",
        "berth-pull-team-a-ci",
    )];
    let c = repository_conditions(&repo, 1, &notes, &served);
    let ready = condition_of(&c, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ServiceAccountNotFound")
    );
    let degraded = condition_of(&c, "Degraded");
    assert_eq!(degraded.reason, "ServiceAccountNotFound");
    assert_eq!(
        degraded.message,
        "ServiceAccount build/runner does not exist yet: its pull Secret berth-pull-team-a-ci is ready and will be added when it appears"
    );

    repo.status = Some(RepositoryStatus {
        tag_count: Some(4),
        size_bytes: Some(100),
        last_retention_run: Some("2020-01-01T00:00:00Z".into()),
        pull_secrets: vec!["build/old".into()],
        served_rules: Some("abc".into()),
        ..Default::default()
    });
    let s = repository_status(&repo, c.clone(), None);
    assert_eq!(s.pull_secrets, ["build/old"]);
    assert_eq!(s.tag_count, Some(4));
    let observed = RepositoryObserved {
        pull_secrets: vec!["build/new".into()],
        last_retention_run: None,
        usage: None,
        served_rules: None,
    };
    let s = repository_status(&repo, c.clone(), Some(observed));
    assert_eq!(s.pull_secrets, ["build/new"]);
    assert_eq!(
        s.last_retention_run.as_deref(),
        Some("2020-01-01T00:00:00Z"),
        "a CronJob that has not run yet keeps the last run known"
    );
    assert_eq!(
        (s.tag_count, s.size_bytes, s.served_rules.as_deref()),
        (Some(4), Some(100), Some("abc")),
        "no pod answered: the figures known are kept"
    );
    // What the registry reports replaces them.
    let observed = RepositoryObserved {
        pull_secrets: vec![],
        last_retention_run: None,
        usage: Some(berth_config::ops::Usage {
            repositories: 2,
            tags: 7,
            manifests: 5,
            bytes: 12345,
        }),
        served_rules: Some("def".into()),
    };
    let s = repository_status(&repo, c, Some(observed));
    assert_eq!(
        (s.tag_count, s.size_bytes, s.served_rules.as_deref()),
        (Some(7), Some(12345), Some("def"))
    );
}

#[test]
fn image_pull_secret_edits_are_idempotent() {
    let mut sa = ServiceAccount::default();
    assert!(add_image_pull_secret(&mut sa, "pull"));
    assert!(!add_image_pull_secret(&mut sa, "pull"));
    assert!(add_image_pull_secret(&mut sa, "other"));
    assert_eq!(
        sa.image_pull_secrets.as_deref(),
        Some(
            &[
                LocalObjectReference {
                    name: "pull".into()
                },
                LocalObjectReference {
                    name: "other".into()
                }
            ][..]
        )
    );
    assert!(remove_image_pull_secret(&mut sa, "pull"));
    assert!(!remove_image_pull_secret(&mut sa, "pull"));
    assert!(!remove_image_pull_secret(
        &mut ServiceAccount::default(),
        "pull"
    ));
}

#[test]
fn robots_and_the_endpoint_pull_secrets_name() {
    let plain = repository(
        "a",
        "registry: hub\nname: a\naccess: [{users: [u], actions: [pull]}]\n",
    );
    let granted = repository(
        "b",
        "registry: hub\nname: b\naccess: [{serviceAccounts: [{name: runner}], actions: [pull]}]\n",
    );
    assert!(!needs_robot(&plain));
    assert!(needs_robot(&granted));
    assert_eq!(robot_hash(&Secret::default()), None);
    let s = Secret {
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"pw".to_vec()),
        )])),
        ..Default::default()
    };
    assert_eq!(robot_hash(&s), Some(sha256_hex(b"pw")));

    // The node endpoint, before and after the Registry reports it.
    let mut reg = registry("{}");
    assert_eq!(pull_addresses(&reg), ["localhost:5000"]);
    reg.status = Some(RegistryStatus {
        endpoint: Some("localhost:5000".into()),
        ..Default::default()
    });
    assert_eq!(pull_addresses(&reg), ["localhost:5000"]);
    // Without it: the Service's address as the status reports it, else its
    // DNS name; an Ingress host as well when there is one.
    let mut reg = registry("nodeEndpoint: {enabled: false}\n");
    assert_eq!(pull_addresses(&reg), ["hub.team-a.svc:5000"]);
    reg.status = Some(RegistryStatus {
        endpoint: Some("10.0.0.7:5000".into()),
        ..Default::default()
    });
    assert_eq!(pull_addresses(&reg), ["10.0.0.7:5000"]);
    let mut reg = registry("nodeEndpoint: {port: 5050}\ningress: {host: reg.example.com}\n");
    reg.status = Some(RegistryStatus {
        endpoint: Some("localhost:5050".into()),
        ..Default::default()
    });
    assert_eq!(pull_addresses(&reg), ["localhost:5050", "reg.example.com"]);
    let cfg: serde_json::Value =
        serde_json::from_str(&docker_config_json(&pull_addresses(&reg), "u", "p")).unwrap();
    for a in ["localhost:5050", "reg.example.com"] {
        assert_eq!(cfg["auths"][a]["auth"], "dTpw", "{cfg}");
    }
}
