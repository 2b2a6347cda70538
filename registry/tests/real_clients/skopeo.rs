//! skopeo with images built by umoci: one image, and a multi-arch index with --all.

use super::*;

#[test]
fn skopeo_round_trips_a_umoci_image() {
    let server = Server::start();
    let tmp = tempdir();
    let work = tmp.path();
    let n = nonce();
    let hello = format!("hello from berth {n}\n").into_bytes();
    let data = noise(300 * 1024, n);
    umoci_image(
        work,
        "layout",
        "v1",
        &[("hello.txt", &hello), ("data/noise.bin", &data)],
        None,
    );
    let layout = Layout(work.join("layout"));
    let (digest, manifest) = layout.manifest("v1");
    let parsed: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    assert_eq!(parsed["layers"].as_array().map(Vec::len), Some(1));

    // push
    let repo = format!("{}/berth-test/umoci", server.addr);
    let dest = format!("docker://{repo}:v1");
    run(
        work,
        "skopeo",
        [
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "oci:layout:v1",
            &dest,
        ],
    );

    // the registry serves the exact manifest bytes, by tag and by digest
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &dest],
    );
    assert_eq!(
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&manifest),
        "manifest by tag differs from the one pushed"
    );
    let by_digest = format!("docker://{repo}@{digest}");
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &by_digest],
    );
    assert_eq!(
        raw, manifest,
        "manifest by digest differs from the one pushed"
    );

    let info = run_json(work, "skopeo", ["inspect", "--tls-verify=false", &dest]);
    assert_eq!(info["Digest"], digest.as_str(), "skopeo inspect: {info}");
    assert_eq!(info["RepoTags"], json!(["v1"]), "skopeo inspect: {info}");
    assert_eq!(info["Architecture"], "amd64", "skopeo inspect: {info}");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info}");

    let tags = run_json(
        work,
        "skopeo",
        [
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{repo}"),
        ],
    );
    assert_eq!(tags["Tags"], json!(["v1"]), "skopeo list-tags: {tags}");

    // pull into a fresh layout: same digest, same blobs, same files
    run(
        work,
        "skopeo",
        ["copy", "--src-tls-verify=false", &dest, "oci:back:v1"],
    );
    let back = Layout(work.join("back"));
    let (back_digest, back_manifest) = back.manifest("v1");
    assert_eq!(back_digest, digest, "pulled manifest digest");
    assert_eq!(back_manifest, manifest);
    let mut blobs = vec![
        parsed["config"]["digest"]
            .as_str()
            .expect("config")
            .to_owned(),
    ];
    for l in parsed["layers"].as_array().expect("layers") {
        blobs.push(l["digest"].as_str().expect("layer digest").to_owned());
    }
    for b in &blobs {
        assert_eq!(back.blob(b), layout.blob(b), "blob {b} round-trips");
    }
    assert_eq!(umoci_read(work, "back", "v1", "hello.txt"), hello);
    assert_eq!(umoci_read(work, "back", "v1", "data/noise.bin"), data);

    // registry to registry into another repository (skopeo tries a
    // cross-repository mount of the blobs)
    let other = format!("docker://{}/berth-test/other/copy:v2", server.addr);
    run(
        work,
        "skopeo",
        [
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &dest,
            &other,
        ],
    );
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &other],
    );
    assert_eq!(raw, manifest, "copied manifest in the second repository");
    run(
        work,
        "skopeo",
        ["copy", "--src-tls-verify=false", &other, "oci:back2:v2"],
    );
    assert_eq!(umoci_read(work, "back2", "v2", "hello.txt"), hello);
}

#[test]
fn skopeo_copies_a_multi_arch_index_with_all() {
    let server = Server::start();
    let tmp = tempdir();
    let work = tmp.path();
    let n = nonce();
    for arch in ["amd64", "arm64"] {
        let content = format!("{arch} {n}\n");
        umoci_image(
            work,
            "layout",
            arch,
            &[("arch.txt", content.as_bytes())],
            Some(arch),
        );
    }
    let layout = Layout(work.join("layout"));
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (digest, bytes) = layout.manifest(arch);
        let m: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
        let config: Value =
            serde_json::from_slice(&layout.blob(m["config"]["digest"].as_str().expect("config")))
                .expect("config JSON");
        assert_eq!(config["architecture"], arch, "umoci config set the arch");
        children.push((arch, digest, bytes));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(arch, digest, bytes)| json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": bytes.len(),
            "platform": { "architecture": arch, "os": "linux" },
        })).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.description": format!("berth test {n}") },
    }))
    .expect("encode index");
    let index_digest = layout.add_tagged("multi", OCI_INDEX, &index);

    let repo = format!("{}/berth-test/multi", server.addr);
    let dest = format!("docker://{repo}:latest");
    run(
        work,
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "oci:layout:multi",
            &dest,
        ],
    );

    // the index, and each child by digest, are served byte for byte
    let raw = run(
        work,
        "skopeo",
        ["inspect", "--raw", "--tls-verify=false", &dest],
    );
    assert_eq!(
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&index),
        "index by tag differs from the one pushed"
    );
    assert_eq!(sha256(&raw), index_digest);
    for (arch, digest, bytes) in &children {
        let raw = run(
            work,
            "skopeo",
            [
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{repo}@{digest}"),
            ],
        );
        assert_eq!(&raw, bytes, "{arch} manifest by digest");
        // platform resolution through the index
        let info = run_json(
            work,
            "skopeo",
            [
                "inspect",
                "--tls-verify=false",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                &dest,
            ],
        );
        // (skopeo reports the digest of the index it resolved through)
        assert_eq!(info["Digest"], index_digest.as_str(), "{arch}: {info}");
        assert_eq!(info["Architecture"], *arch, "{arch} via the index: {info}");
        let m: Value = serde_json::from_slice(bytes).expect("manifest JSON");
        let layers: Vec<&Value> = m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| &l["digest"])
            .collect();
        assert_eq!(info["Layers"], json!(layers), "{arch} layers via the index");
    }

    // pull everything back
    run(
        work,
        "skopeo",
        [
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &dest,
            "oci:back:multi",
        ],
    );
    let back = Layout(work.join("back"));
    let desc = back.descriptor("multi");
    assert_eq!(desc["digest"], index_digest.as_str(), "pulled index digest");
    assert_eq!(desc["mediaType"], OCI_INDEX);
    assert_eq!(back.blob(&index_digest), index);
    for (arch, digest, bytes) in &children {
        assert!(back.has_blob(digest), "{arch} manifest pulled with --all");
        assert_eq!(&back.blob(digest), bytes);
    }

    // and one platform on its own, down to its files
    run(
        work,
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            "--override-os",
            "linux",
            "--override-arch",
            "arm64",
            &dest,
            "oci:arm:only",
        ],
    );
    let (arm_digest, _) = Layout(work.join("arm")).manifest("only");
    assert_eq!(arm_digest, children[1].1, "arm64 selected from the index");
    assert_eq!(
        umoci_read(work, "arm", "only", "arch.txt"),
        format!("arm64 {n}\n").into_bytes()
    );
}
