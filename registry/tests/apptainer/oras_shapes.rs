//! `oras://` in every shape SIF images have been pushed in, each pulled
//! back byte-identical the way Apptainer pulls; a multi-architecture index
//! resolved by platform; SingularityCE 4 OCI-SIF images (squashfs layers
//! pushed with `docker://`).

use super::*;

/// What each shape's manifest must say (config media type and size,
/// layer media type, manifest media type).
fn expected(shape: &str) -> (&'static str, u64, &'static str, &'static str) {
    match shape {
        "apptainer" => (SIF_CONFIG, 2, SIF_LAYER, OCI_MANIFEST),
        "proto" => (
            SIF_CONFIG,
            2,
            "appliciation/vnd.sylabs.sif.layer.tar",
            OCI_MANIFEST,
        ),
        "null-config" => (
            "application/vnd.sylabs.sif.config.v1",
            0,
            SIF_LAYER,
            OCI_MANIFEST,
        ),
        "docker" => (
            SIF_CONFIG,
            2,
            SIF_LAYER,
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        other => panic!("no shape {other}"),
    }
}

#[test]
fn every_oras_shape_round_trips_byte_identical() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    for shape in ["apptainer", "proto", "null-config", "docker"] {
        let sif = make_sif(dir, shape, "amd64", false);
        let name = format!("hpc/shapes/{shape}");
        let reference = format!("oras://{}/{name}:1", server.addr);
        let pushed = apptainer(
            dir,
            [
                "oras-push",
                "-plain-http",
                "-shape",
                shape,
                s(&sif.path),
                &reference,
            ],
        );

        // The manifest: the bytes pushed, under the media type pushed.
        let (ct, served) = manifest(&server, &name, "1");
        let (config_type, config_size, layer_type, manifest_type) = expected(shape);
        assert_eq!(ct, manifest_type, "{shape}");
        assert_eq!(
            sha256(&served),
            pushed["digest"].as_str().unwrap(),
            "{shape}"
        );
        let m = json(&served);
        assert_eq!(m["config"]["mediaType"], config_type, "{shape}: {m}");
        assert_eq!(m["config"]["size"], config_size, "{shape}: {m}");
        assert_eq!(m["layers"][0]["mediaType"], layer_type, "{shape}: {m}");
        assert_eq!(
            m["layers"][0]["digest"],
            sif.digest.as_str(),
            "{shape}: {m}"
        );
        if shape == "apptainer" {
            assert_eq!(m["config"]["data"], "e30=", "{m}");
            assert_eq!(
                m["layers"][0]["annotations"]["org.opencontainers.image.title"],
                format!("{shape}.sif").as_str(),
                "{m}"
            );
        }

        // Pulled as Apptainer pulls: byte-identical.
        let out = dir.join(format!("{shape}-pulled.sif"));
        let pulled = apptainer(dir, ["oras-pull", "-plain-http", &reference, s(&out)]);
        assert_eq!(pulled["mediaType"], layer_type, "{shape}");
        assert!(
            std::fs::read(&out).unwrap() == sif.bytes(),
            "{shape}: the pulled SIF differs"
        );

        // And understood: the layer's header was read at push.
        let api = sif_api(&server, &name, "1");
        let images = api["images"].as_array().unwrap();
        assert_eq!(images.len(), 1, "{shape}: {api}");
        assert_eq!(images[0]["sif"]["architecture"], "amd64", "{shape}: {api}");
        assert_eq!(
            images[0]["layer"]["media_type"], layer_type,
            "{shape}: {api}"
        );
    }

    // The oras CLI pulls Apptainer's shape too (it names the file).
    let out = dir.join("oras-cli");
    run(
        dir,
        "oras",
        [
            "pull",
            "--plain-http",
            "-o",
            s(&out),
            &format!("{}/hpc/shapes/apptainer:1", server.addr),
        ],
    );
    assert!(
        std::fs::read(out.join("apptainer.sif")).unwrap()
            == std::fs::read(dir.join("apptainer.sif")).unwrap()
    );
}

#[test]
fn a_multi_architecture_index_is_resolved_by_platform() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    let name = "hpc/multi/oras";
    let mut entries = Vec::new();
    let mut sifs = Vec::new();
    for arch in ["amd64", "arm64", "ppc64le"] {
        let sif = make_sif(dir, arch, arch, arch == "arm64");
        let pushed = apptainer(
            dir,
            [
                "oras-push",
                "-plain-http",
                s(&sif.path),
                &format!("oras://{}/{name}:{arch}", server.addr),
            ],
        );
        entries.push(format!(
            "{}=linux/{arch}",
            pushed["digest"].as_str().unwrap()
        ));
        sifs.push(sif);
    }
    let reference = format!("oras://{}/{name}:multi", server.addr);
    let mut args = vec!["oras-index", "-plain-http", &reference];
    args.extend(entries.iter().map(String::as_str));
    let index = apptainer(dir, &args);
    let (ct, served) = manifest(&server, name, "multi");
    assert_eq!(ct, OCI_INDEX);
    assert_eq!(sha256(&served), index["digest"].as_str().unwrap());

    for sif in &sifs {
        let out = dir.join(format!("multi-{}.sif", sif.arch));
        let pulled = apptainer(
            dir,
            [
                "oras-pull",
                "-plain-http",
                "-arch",
                &sif.arch,
                &reference,
                s(&out),
            ],
        );
        assert_eq!(pulled["digest"], sif.digest.as_str(), "{}", sif.arch);
        assert!(std::fs::read(&out).unwrap() == sif.bytes(), "{}", sif.arch);
    }
    let e = apptainer_fails(
        dir,
        [
            "oras-pull",
            "-plain-http",
            "-arch",
            "s390x",
            &reference,
            s(&dir.join("none.sif")),
        ],
    );
    assert!(e.contains("no child with platform"), "{e}");

    // The SIF API lists each platform's image, described.
    let api = sif_api(&server, name, "multi");
    let images = api["images"].as_array().unwrap();
    assert_eq!(images.len(), 3, "{api}");
    for (image, sif) in images.iter().zip(&sifs) {
        assert_eq!(
            image["platform"]["architecture"],
            sif.arch.as_str(),
            "{api}"
        );
        assert_eq!(image["sif"]["architecture"], sif.arch.as_str(), "{api}");
        assert_eq!(image["layer"]["digest"], sif.digest.as_str(), "{api}");
        assert_eq!(image["sif"]["signed"], sif.fingerprint.is_some(), "{api}");
    }
}

#[test]
fn oci_sif_images_with_squashfs_layers_round_trip() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    let mut layers = Vec::new();
    for part in ["base", "app"] {
        let root = dir.join(part);
        std::fs::create_dir_all(root.join("opt")).unwrap();
        std::fs::write(root.join("opt").join(part), nonce()).unwrap();
        let sq = dir.join(format!("{part}.sqfs"));
        run(
            dir,
            "mksquashfs",
            [s(&root), s(&sq), "-noappend", "-quiet", "-no-progress"],
        );
        layers.push(sq);
    }
    let reference = format!("docker://{}/hpc/ocisif/app:1", server.addr);
    let pushed = apptainer(
        dir,
        [
            "oci-sif-push",
            "-plain-http",
            "-arch",
            "arm64",
            &reference,
            s(&layers[0]),
            s(&layers[1]),
        ],
    );
    let (ct, served) = manifest(&server, "hpc/ocisif/app", "1");
    assert_eq!(ct, OCI_MANIFEST);
    assert_eq!(sha256(&served), pushed["digest"].as_str().unwrap());
    let m = json(&served);
    for (i, layer) in layers.iter().enumerate() {
        let d = &m["layers"][i];
        assert_eq!(
            d["mediaType"], "application/vnd.sylabs.image.layer.v1.squashfs",
            "{m}"
        );
        let bytes = std::fs::read(layer).unwrap();
        assert_eq!(d["digest"], sha256(&bytes).as_str(), "{m}");
        // crane, another OCI client, pulls the squashfs back.
        let got = run(
            dir,
            "crane",
            [
                "blob",
                "--insecure",
                &format!("{}/hpc/ocisif/app@{}", server.addr, sha256(&bytes)),
            ],
        );
        assert!(got == bytes, "layer {i} differs");
    }
    let config = run(
        dir,
        "crane",
        [
            "config",
            "--insecure",
            &format!("{}/hpc/ocisif/app:1", server.addr),
        ],
    );
    assert_eq!(json(&config)["architecture"], "arm64");
    // Squashfs layers are not SIF files: nothing to describe.
    let api = sif_api(&server, "hpc/ocisif/app", "1");
    assert_eq!(api["images"].as_array().unwrap().len(), 0, "{api}");
}
