//! Where a Registry keeps blobs (a volume claim or an S3 bucket) and
//! metadata (embedded SQLite or PostgreSQL).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Blob storage: exactly one of `volume` or `s3`; a 10Gi volume when neither
/// is set.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("!(has(self.volume) && has(self.s3))").message("set either storage.volume or storage.s3, not both").field_path(".s3")
)]
pub struct StorageSpec {
    /// A PersistentVolumeClaim mounted at the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeStorage>,
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// A PersistentVolumeClaim for blobs and the embedded database.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStorage {
    /// Requested size (a Kubernetes quantity). It can grow; the operator never
    /// shrinks or deletes a claim because the spec got smaller.
    #[serde(default = "default_volume_size")]
    #[x_kube(validation = super::bytes_rule())]
    pub size: String,
    /// StorageClass of the claim; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access modes of the claim.
    #[serde(default = "default_access_modes")]
    pub access_modes: Vec<String>,
    /// Keep the claim (and the data) when the Registry is deleted.
    #[serde(default)]
    pub retain_on_delete: bool,
}

impl Default for VolumeStorage {
    fn default() -> Self {
        Self {
            size: default_volume_size(),
            storage_class_name: None,
            access_modes: default_access_modes(),
            retain_on_delete: false,
        }
    }
}

fn default_volume_size() -> String {
    "10Gi".into()
}

fn default_access_modes() -> Vec<String> {
    vec!["ReadWriteOnce".into()]
}

/// An S3-compatible bucket.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL for S3-compatible servers (http:// or https://); AWS
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key prefix inside the bucket, so that several registries share one
    /// bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path-style URLs (endpoint/bucket/key), as most S3-compatible servers
    /// want; by default true with an endpoint, false on AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Answer blob GETs with a 307 to a presigned URL of the bucket instead
    /// of streaming the bytes through the registry pods.
    #[serde(default)]
    pub redirect: bool,
    /// Endpoint URL clients reach the bucket at, for the presigned URLs of
    /// `redirect`; the endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub public_endpoint: Option<String>,
    /// Secret (same namespace) with keys `accessKeyId` and `secretAccessKey`.
    pub credentials_secret: String,
}

/// Metadata database.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct DatabaseSpec {
    /// PostgreSQL instead of the embedded SQLite database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSpec>,
}

/// PostgreSQL connection.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    /// Secret (same namespace) holding the connection URL
    /// (`postgres://user:password@host:5432/db`).
    pub url_secret: SecretKeyRef,
    /// Connections each registry pod (and each maintenance job) keeps at
    /// most; the registry's default (16) when absent. Every replica has its
    /// own pool: keep replicas x poolSize under the server's max_connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub pool_size: Option<u32>,
}

/// A key of a Secret in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    #[serde(default = "default_url_key")]
    pub key: String,
}

fn default_url_key() -> String {
    "url".into()
}
