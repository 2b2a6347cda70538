//! The `berth serve` config file of a Registry's pods (berth-config's
//! type, which the registry parses) and the environment of its containers.

use std::net::{Ipv4Addr, SocketAddr};

use berth_config::{LogFormat, S3Config, ServerConfig, StorageBackend, env as berth_env};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use kube::ResourceExt;

use super::{
    CONFIG_DIR, DATA_DIR, HTPASSWD_DIR, LISTEN_PORT, METRICS_LISTEN_PORT, SHUTDOWN_DELAY_SECONDS,
    SHUTDOWN_TIMEOUT_SECONDS, TOKEN_DIR, mirror_configs,
};
use crate::crd::{self, Registry};
use crate::render::RenderError;

/// The `berth serve` config file of a Registry's pods, in the registry's
/// own type: every field is named, so that a field added to the contract is
/// a compile error here until the operator decides what to render for it.
pub fn server_config(reg: &Registry) -> ServerConfig {
    let auth = &reg.spec.auth;
    ServerConfig {
        listen: Some(all_addresses(LISTEN_PORT)),
        // `/metrics`, on all addresses: Prometheus scrapes it from outside the pod.
        metrics_listen: Some(all_addresses(METRICS_LISTEN_PORT)),
        // The claim; an emptyDir with S3 and PostgreSQL, where nothing is
        // kept in it (the token key is the mounted Secret's, never made here).
        data_dir: Some(DATA_DIR.into()),
        // Blobs in the bucket when there is one, else on the data volume.
        storage: Some(if reg.spec.storage.s3.is_some() {
            StorageBackend::S3
        } else {
            StorageBackend::Filesystem
        }),
        s3: reg
            .spec
            .storage
            .s3
            .as_ref()
            .map(|s3| S3Config {
                bucket: Some(s3.bucket.clone()),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                prefix: s3.prefix.clone(),
                path_style: s3.path_style,
                // The credentials come as AWS_* variables from their Secret.
                access_key_id_file: None,
                secret_access_key_file: None,
                redirect: s3.redirect.then_some(true),
                public_endpoint: s3.public_endpoint.clone(),
            })
            .unwrap_or_default(),
        // The PostgreSQL URL comes as BERTH_DATABASE_URL from its Secret.
        database_url: None,
        database_url_file: None,
        database_pool_size: reg
            .spec
            .database
            .postgres
            .as_ref()
            .and_then(|pg| pg.pool_size),
        database_timeout_seconds: None,
        log_format: Some(match reg.spec.log_format {
            crd::LogFormat::Text => LogFormat::Text,
            crd::LogFormat::Json => LogFormat::Json,
        }),
        upload_expiry_seconds: reg.spec.upload_expiry_seconds,
        // Always set: a Registry run by the operator is access-controlled by
        // the policy rendered from its Repositories.
        policy_file: Some(format!("{CONFIG_DIR}/policy.yaml").into()),
        htpasswd_file: auth
            .htpasswd_secret
            .as_ref()
            .map(|_| format!("{HTPASSWD_DIR}/htpasswd").into()),
        token_key_file: Some(format!("{TOKEN_DIR}/key.pem").into()),
        token_issuer: Some(auth.token.issuer.clone().unwrap_or_else(|| reg.name_any())),
        token_service: None,
        token_expiry_seconds: Some(u64::from(auth.token.expiry_seconds)),
        // Base URL for the token realm: the Ingress host when there is one,
        // else the request's Host header.
        public_url: reg.spec.ingress.as_ref().map(|i| {
            let scheme = if i.tls_secret.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", i.host)
        }),
        // gc runs in its CronJob, not in the server.
        gc_interval_seconds: None,
        // Left to the registry's defaults.
        gc_grace_seconds: None,
        gc_keep_untagged: None,
        header_timeout_seconds: None,
        body_timeout_seconds: None,
        send_timeout_seconds: None,
        max_connections: None,
        max_connections_per_client: None,
        // Out of the Service first, then the open requests finish; the
        // pod's terminationGracePeriodSeconds covers both.
        shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_SECONDS),
        shutdown_delay_seconds: Some(SHUTDOWN_DELAY_SECONDS),
        // Per-repository settings come from the Repositories, in the policy
        // file (reloaded without a restart).
        repositories: Vec::new(),
        mirrors: mirror_configs(reg),
    }
}

fn all_addresses(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

pub fn server_config_yaml(reg: &Registry) -> Result<String, RenderError> {
    let body =
        serde_yaml::to_string(&server_config(reg)).map_err(|source| RenderError::Serialise {
            what: "server config",
            source,
        })?;
    Ok(format!(
        "# Rendered by berth-operator from Registry {}/{}; edits are overwritten.\n{body}",
        reg.namespace().unwrap_or_default(),
        reg.name_any()
    ))
}

fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Environment of the registry and job containers: the config file path,
/// and the secrets the config file must not carry (the S3 credentials as
/// AWS_*, the PostgreSQL URL as BERTH_DATABASE_URL), from their Secrets.
pub(super) fn env(reg: &Registry) -> Vec<EnvVar> {
    let mut env = vec![plain_env(
        berth_env::CONFIG,
        format!("{CONFIG_DIR}/config.yaml"),
    )];
    if let Some(s3) = &reg.spec.storage.s3 {
        env.push(secret_env(
            berth_env::S3_ACCESS_KEY_ID,
            &s3.credentials_secret,
            "accessKeyId",
        ));
        env.push(secret_env(
            berth_env::S3_SECRET_ACCESS_KEY,
            &s3.credentials_secret,
            "secretAccessKey",
        ));
    }
    if let Some(pg) = &reg.spec.database.postgres {
        env.push(secret_env(
            berth_env::DATABASE_URL,
            &pg.url_secret.name,
            &pg.url_secret.key,
        ));
    }
    env
}
