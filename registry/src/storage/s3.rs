//! Blobs in an S3-compatible bucket: an [`ObjectBlobs`] over object_store's
//! S3 client, configured from the shared [`S3Config`] and checked at start.

use std::sync::Arc;
use std::time::Duration;

use berth_config::S3Config;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use super::ObjectBlobs;

/// Why a bucket cannot be used; says which and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("s3: `bucket` is required with storage: s3")]
    NoBucket,
    #[error("s3: cannot read {what} from {path}")]
    Secret {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("s3: bad settings")]
    Settings(#[source] object_store::Error),
    #[error("s3: bucket `{bucket}` at {endpoint} cannot be used")]
    Unreachable {
        bucket: String,
        endpoint: String,
        #[source]
        source: object_store::Error,
    },
}

/// A secret from a file (a mounted Secret), without its trailing newline.
fn secret(path: &std::path::Path, what: &'static str) -> Result<String, S3Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|source| S3Error::Secret {
            what,
            path: path.display().to_string(),
            source,
        })
}

fn builder(config: &S3Config, endpoint: Option<&str>) -> Result<AmazonS3Builder, S3Error> {
    let bucket = config.bucket.clone().ok_or(S3Error::NoBucket)?;
    // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION… from the
    // environment; the settings below win.
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(config.region.clone().unwrap_or_else(|| "us-east-1".into()))
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(300)),
        );
    if let Some(endpoint) = endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let path_style = config.path_style.unwrap_or(endpoint.is_some());
    b = b.with_virtual_hosted_style_request(!path_style);
    if let Some(path) = &config.access_key_id_file {
        b = b.with_access_key_id(secret(path, "the access key id")?);
    }
    if let Some(path) = &config.secret_access_key_file {
        b = b.with_secret_access_key(secret(path, "the secret access key")?);
    }
    Ok(b)
}

/// The bucket of `config`, checked: a listing of the prefix must answer.
pub async fn open(config: &S3Config) -> Result<ObjectBlobs, S3Error> {
    let bucket = config.bucket.clone().ok_or(S3Error::NoBucket)?;
    let endpoint = config.endpoint.as_deref();
    let store: AmazonS3 = builder(config, endpoint)?
        .build()
        .map_err(S3Error::Settings)?;
    let prefix = config.prefix.clone().unwrap_or_default();
    let probe =
        (!prefix.trim_matches('/').is_empty()).then(|| Path::from(prefix.trim_matches('/')));
    if let Err(source) = store.list_with_delimiter(probe.as_ref()).await {
        return Err(S3Error::Unreachable {
            bucket,
            endpoint: endpoint.unwrap_or("AWS").to_string(),
            source,
        });
    }
    let signer: Option<Arc<dyn Signer>> =
        match (config.redirect.unwrap_or(false), &config.public_endpoint) {
            (false, _) => None,
            (true, None) => Some(Arc::new(store.clone())),
            // Presigned URLs name the host clients reach the bucket at.
            (true, Some(public)) => Some(Arc::new(
                builder(config, Some(public))?
                    .build()
                    .map_err(S3Error::Settings)?,
            )),
        };
    Ok(ObjectBlobs::new(Arc::new(store), &prefix, signer))
}
