//! Drives a real `berth` with the `oci-client` crate, the Rust client that
//! wasmtime, krustlet and others use.

mod common;

use std::collections::BTreeMap;

use common::Server;
use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

fn reference(server: &Server, repo_and_tag: &str) -> Reference {
    format!("{}/{}", server.addr, repo_and_tag).parse().unwrap()
}

#[tokio::test]
async fn push_pull_list_image() {
    let server = Server::start();
    let client = client();
    let image = reference(&server, "team/app/web:v1");
    let layers = vec![
        ImageLayer::oci_v1_gzip(b"layer one".to_vec(), None),
        ImageLayer::oci_v1(vec![7u8; 100_000], None),
    ];
    let config = Config::oci_v1(br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), None);
    client
        .push(
            &image,
            &layers,
            config.clone(),
            &RegistryAuth::Anonymous,
            None,
        )
        .await
        .unwrap();

    let pulled = client
        .pull(
            &image,
            &RegistryAuth::Anonymous,
            vec![
                oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE,
                oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
            ],
        )
        .await
        .unwrap();
    // oci-client fetches layers concurrently and returns them as they arrive.
    let mut got: Vec<String> = pulled.layers.iter().map(|l| sha256_hex(&l.data)).collect();
    let mut want: Vec<String> = layers.iter().map(|l| sha256_hex(&l.data)).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(pulled.config.data == config.data, "config differs");

    // The digest the registry reports is the digest of the bytes it serves.
    let (manifest, digest) = client
        .pull_manifest(&image, &RegistryAuth::Anonymous)
        .await
        .unwrap();
    assert!(matches!(manifest, OciManifest::Image(_)));
    let by_digest = reference(&server, &format!("team/app/web@{digest}"));
    let (raw, raw_digest) = client
        .pull_manifest_raw(
            &by_digest,
            &RegistryAuth::Anonymous,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .unwrap();
    assert_eq!(raw_digest, digest);
    assert_eq!(digest, format!("sha256:{}", sha256_hex(&raw)));

    client
        .push(
            &reference(&server, "team/app/web:v2"),
            &layers,
            config,
            &RegistryAuth::Anonymous,
            None,
        )
        .await
        .unwrap();
    let tags = client
        .list_tags(&image, &RegistryAuth::Anonymous, None, None)
        .await
        .unwrap();
    assert_eq!(tags.tags, vec!["v1", "v2"]);
    let catalog = client
        .catalog(&image, &RegistryAuth::Anonymous, None, None)
        .await
        .unwrap();
    assert_eq!(catalog.repositories, vec!["team/app/web"]);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[tokio::test]
async fn chunked_stream_push_partial_pull_and_mount() {
    let server = Server::start();
    let client = client();
    let image = reference(&server, "chunks/src:latest");
    // 3 MiB in uneven chunks, pushed with chunked PATCH requests.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<oci_client::errors::Result<bytes::Bytes>> = data
        .chunks(700_000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let pushed = client
        .push_blob_stream_chunked(&image, futures::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(pushed.size, data.len() as u64);
    assert_eq!(pushed.blob_digest, format!("sha256:{}", sha256_hex(&data)));

    let layer = OciDescriptor {
        media_type: "application/octet-stream".into(),
        digest: pushed.blob_digest.clone(),
        size: data.len() as i64,
        ..Default::default()
    };
    let partial = client
        .pull_blob_stream_partial(&image, &layer, 1000, Some(10))
        .await
        .unwrap();
    let oci_client::client::BlobResponse::Partial(mut stream) = partial else {
        panic!("expected a 206 partial response");
    };
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, &data[1000..1010]);

    let target = reference(&server, "chunks/dst:latest");
    assert!(
        !client
            .blob_exists(&target, &pushed.blob_digest)
            .await
            .unwrap()
    );
    client
        .mount_blob(&target, &image, &pushed.blob_digest)
        .await
        .unwrap();
    assert!(
        client
            .blob_exists(&target, &pushed.blob_digest)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn sif_artifact_and_referrers() {
    let server = Server::start();
    let client = client();
    let image = reference(&server, "hpc/lolcow:latest");
    let sif = ImageLayer::new(
        vec![0x53u8; 4096],
        "application/vnd.sylabs.sif.layer.v1.sif".into(),
        None,
    );
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.sylabs.sif.config.v1+json".into(),
        None,
    );
    client
        .push(
            &image,
            std::slice::from_ref(&sif),
            config,
            &RegistryAuth::Anonymous,
            None,
        )
        .await
        .unwrap();
    let pulled = client
        .pull(
            &image,
            &RegistryAuth::Anonymous,
            vec!["application/vnd.sylabs.sif.layer.v1.sif"],
        )
        .await
        .unwrap();
    assert!(pulled.layers[0].data == sif.data, "SIF layer differs");
    let subject_digest = pulled.digest.clone().unwrap();

    // A signature-like artifact referring to the SIF image.
    let empty = OciDescriptor {
        media_type: "application/vnd.oci.empty.v1+json".into(),
        digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into(),
        size: 2,
        ..Default::default()
    };
    let sig_blob = b"signature bytes".to_vec();
    let sig_ref = reference(&server, "hpc/lolcow:sig");
    client
        .push_blob(
            &sig_ref,
            sig_blob.clone(),
            &format!("sha256:{}", sha256_hex(&sig_blob)),
        )
        .await
        .unwrap();
    let manifest = OciImageManifest {
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        artifact_type: Some("application/vnd.example.signature".into()),
        config: empty,
        layers: vec![OciDescriptor {
            media_type: "application/octet-stream".into(),
            digest: format!("sha256:{}", sha256_hex(&sig_blob)),
            size: sig_blob.len() as i64,
            ..Default::default()
        }],
        subject: Some(OciDescriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: subject_digest.clone(),
            size: 0,
            ..Default::default()
        }),
        annotations: Some(BTreeMap::from([(
            "org.example.signer".to_string(),
            "ci".to_string(),
        )])),
        ..Default::default()
    };
    client
        .push_manifest(&sig_ref, &OciManifest::Image(manifest))
        .await
        .unwrap();

    let subject = reference(&server, &format!("hpc/lolcow@{subject_digest}"));
    let index = client.pull_referrers(&subject, None).await.unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(
        index.manifests[0].artifact_type.as_deref(),
        Some("application/vnd.example.signature")
    );
    assert_eq!(
        index.manifests[0]
            .annotations
            .as_ref()
            .and_then(|a| a.get("org.example.signer"))
            .map(String::as_str),
        Some("ci")
    );
    let none = client
        .pull_referrers(&subject, Some("application/vnd.other"))
        .await
        .unwrap();
    assert!(none.manifests.is_empty());
}
