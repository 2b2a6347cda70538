//! `library://` on OCI storage: what a library push stores, pulled back by
//! the library client and by OCI clients; OCI pushes pulled by the library
//! client; several architectures under one tag; the discovery and token
//! endpoints; what is not served.

use super::*;

/// `library://ENTITY/COLLECTION/CONTAINER:TAGS`.
fn library_ref(path: &str) -> String {
    format!("library://{path}")
}

fn library_push(dir: &Path, server: &Server, sif: &Sif, path: &str, extra: &[&str]) -> Value {
    let mut args = vec!["library-push", "-remote", &server.base];
    args.extend_from_slice(extra);
    let reference = library_ref(path);
    args.extend([s(&sif.path), reference.as_str()]);
    apptainer(dir, &args)
}

fn library_pull(
    dir: &Path,
    server: &Server,
    path: &str,
    arch: &str,
    out: &Path,
    extra: &[&str],
) -> Value {
    let mut args = vec!["library-pull", "-remote", &server.base, "-arch", arch];
    args.extend_from_slice(extra);
    let reference = library_ref(path);
    args.extend([reference.as_str(), s(out)]);
    apptainer(dir, &args)
}

#[test]
fn a_library_push_is_ordinary_oci_content_that_every_client_pulls() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    let sif = make_sif(dir, "app", "amd64", true);
    let name = "hpc/tools/app";

    let pushed = library_push(
        dir,
        &server,
        &sif,
        &format!("{name}:1.0,latest"),
        &["-description", "test app"],
    );
    assert_eq!(pushed["arch"], "amd64");

    // Pulled back through library:// (record, redirect, OCI API, hash check).
    let out = dir.join("pulled.sif");
    let pulled = library_pull(dir, &server, &format!("{name}:1.0"), "amd64", &out, &[]);
    assert!(
        std::fs::read(&out).unwrap() == sif.bytes(),
        "library pull is not byte-identical"
    );
    let image = &pulled["image"];
    assert_eq!(
        image["hash"],
        format!("sha256.{}", &sif.digest[7..]).as_str(),
        "{image}"
    );
    assert_eq!(image["size"], sif.size, "{image}");
    assert_eq!(image["arch"], "amd64", "{image}");
    assert_eq!(image["signed"], true, "{image}");
    assert_eq!(image["description"], "test app", "{image}");
    assert_eq!(
        image["fingerprints"][0].as_str(),
        sif.fingerprint.as_deref(),
        "{image}"
    );
    assert_eq!(image["containerName"], "app");
    assert_eq!(image["entityName"], "hpc");

    // Stored as the client pushed it: an index per tag for its platform...
    for tag in ["1.0", "latest"] {
        let (ct, index) = manifest(&server, name, tag);
        assert_eq!(ct, OCI_INDEX);
        let index = json(&index);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
        assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
        assert_eq!(index["manifests"][0]["platform"]["os"], "linux");
    }
    // ...of an image manifest tagged with the SIF's hash: SIF config
    // naming the architecture and the SIF, one SIF layer.
    let hash_tag = format!("sha256.{}", &sif.digest[7..]);
    let (ct, image_manifest) = manifest(&server, name, &hash_tag);
    assert_eq!(ct, OCI_MANIFEST);
    let m = json(&image_manifest);
    assert_eq!(m["config"]["mediaType"], SIF_CONFIG, "{m}");
    assert_eq!(m["layers"][0]["mediaType"], SIF_LAYER, "{m}");
    assert_eq!(m["layers"][0]["digest"], sif.digest.as_str(), "{m}");
    let (_, index) = manifest(&server, name, "1.0");
    assert_eq!(
        json(&index)["manifests"][0]["digest"],
        sha256(&image_manifest).as_str()
    );
    let config = json(&blob(
        &server,
        name,
        m["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["architecture"], "amd64", "{config}");
    assert_eq!(config["rootfs"], sif.digest.as_str(), "{config}");
    assert_eq!(config["signed"], true, "{config}");

    // oras:// as Apptainer pulls it (platform chosen from the index).
    let oras_out = dir.join("oras.sif");
    let reference = format!("oras://{}/{name}:1.0", server.addr);
    let got = apptainer(
        dir,
        [
            "oras-pull",
            "-plain-http",
            "-arch",
            "amd64",
            &reference,
            s(&oras_out),
        ],
    );
    assert_eq!(got["digest"], sif.digest.as_str());
    assert!(std::fs::read(&oras_out).unwrap() == sif.bytes());
    // And any OCI client: the oras CLI fetches the SIF blob.
    let blob_out = dir.join("blob.sif");
    run(
        dir,
        "oras",
        [
            "blob",
            "fetch",
            "--plain-http",
            "--output",
            s(&blob_out),
            &format!("{}/{name}@{}", server.addr, sif.digest),
        ],
    );
    assert!(std::fs::read(&blob_out).unwrap() == sif.bytes());

    // Pushing the same image again: the client finds the blob there.
    library_push(
        dir,
        &server,
        &sif,
        &format!("{name}:1.0"),
        &["-description", "test app"],
    );
    let (_, again) = manifest(&server, name, "1.0");
    assert_eq!(again, index, "the same push stores the same index");
}

#[test]
fn images_pushed_over_oras_are_pulled_through_library() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    for (i, shape) in ["apptainer", "proto", "null-config", "docker"]
        .iter()
        .enumerate()
    {
        let arch = if i % 2 == 0 { "arm64" } else { "amd64" };
        let sif = make_sif(dir, &format!("oras-{shape}"), arch, i == 0);
        let name = format!("hpc/oras/{shape}");
        let pushed = apptainer(
            dir,
            [
                "oras-push",
                "-plain-http",
                "-shape",
                shape,
                s(&sif.path),
                &format!("oras://{}/{name}:v1", server.addr),
            ],
        );

        let out = dir.join(format!("{shape}.sif"));
        let pulled = library_pull(dir, &server, &format!("{name}:v1"), arch, &out, &[]);
        assert!(
            std::fs::read(&out).unwrap() == sif.bytes(),
            "{shape}: library pull is not byte-identical"
        );
        assert_eq!(pulled["image"]["arch"], arch, "{shape}");
        assert_eq!(pulled["image"]["signed"], i == 0, "{shape}");

        // /v2 still serves exactly what was pushed.
        let (_, served) = manifest(&server, &name, "v1");
        assert_eq!(
            sha256(&served),
            pushed["digest"].as_str().unwrap(),
            "{shape}"
        );

        // Library clients are shown the config a library push of the same
        // file stores: the same bytes, so the same digest.
        if *shape == "apptainer" {
            let view = http_get(
                &server.url(&format!("/library/v2/{name}/manifests/v1")),
                &["Authorization: Bearer berth-open-registry"],
            );
            assert_eq!(view.header("content-type"), Some(OCI_MANIFEST));
            let view = view.json();
            library_push(dir, &server, &sif, "hpc/oras/again:v1", &[]);
            let (_, pushed_by_library) = manifest(
                &server,
                "hpc/oras/again",
                &format!("sha256.{}", &sif.digest[7..]),
            );
            assert_eq!(
                view["config"]["digest"],
                json(&pushed_by_library)["config"]["digest"],
                "{view}"
            );
            assert_eq!(
                view["layers"][0],
                json(&served)["layers"][0],
                "the layer as pushed"
            );
        }

        // Another architecture is not there.
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let e = apptainer_fails(
            dir,
            [
                "library-pull",
                "-remote",
                &server.base,
                "-arch",
                other,
                &library_ref(&format!("{name}:v1")),
                s(&dir.join("nothing.sif")),
            ],
        );
        assert!(e.contains("does not exist in the library"), "{shape}: {e}");
    }
}

#[test]
fn one_tag_holds_an_image_per_architecture() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    let name = "hpc/multi/tool";
    let amd = make_sif(dir, "amd", "amd64", false);
    let arm = make_sif(dir, "arm", "arm64", false);
    library_push(dir, &server, &amd, &format!("{name}:latest"), &[]);
    library_push(dir, &server, &arm, &format!("{name}:latest"), &[]);

    let (_, index) = manifest(&server, name, "latest");
    let index = json(&index);
    let mut arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    arches.sort();
    assert_eq!(arches, ["amd64", "arm64"], "{index}");

    for sif in [&amd, &arm] {
        let out = dir.join(format!("library-{}.sif", sif.arch));
        library_pull(
            dir,
            &server,
            &format!("{name}:latest"),
            &sif.arch,
            &out,
            &[],
        );
        assert!(
            std::fs::read(&out).unwrap() == sif.bytes(),
            "library {}",
            sif.arch
        );
        let out = dir.join(format!("oras-{}.sif", sif.arch));
        apptainer(
            dir,
            [
                "oras-pull",
                "-plain-http",
                "-arch",
                &sif.arch,
                &format!("oras://{}/{name}:latest", server.addr),
                s(&out),
            ],
        );
        assert!(
            std::fs::read(&out).unwrap() == sif.bytes(),
            "oras {}",
            sif.arch
        );
    }

    // A new amd64 build replaces the amd64 image only.
    let amd2 = make_sif(dir, "amd2", "amd64", false);
    library_push(dir, &server, &amd2, &format!("{name}:latest"), &[]);
    let (_, index) = manifest(&server, name, "latest");
    let index = json(&index);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let out = dir.join("amd2.sif");
    library_pull(dir, &server, &format!("{name}:latest"), "amd64", &out, &[]);
    assert!(std::fs::read(&out).unwrap() == amd2.bytes());
    let out = dir.join("arm-still.sif");
    library_pull(dir, &server, &format!("{name}:latest"), "arm64", &out, &[]);
    assert!(std::fs::read(&out).unwrap() == arm.bytes());
}

#[test]
fn discovery_redirect_and_what_is_not_served() {
    let server = Server::start();

    // apptainer remote add: the library and token services are here.
    let a = http_get(&server.url("/assets/config/config.prod.json"), &[]);
    assert_eq!(a.status, 200);
    let services = a.json();
    assert_eq!(
        services["libraryAPI"]["uri"],
        server.base.as_str(),
        "{services}"
    );
    assert_eq!(
        services["tokenAPI"]["uri"],
        server.base.as_str(),
        "{services}"
    );
    let version = http_get(&server.url("/version"), &[]).json();
    assert_eq!(version["data"]["apiVersion"], "2.0.0-alpha.2", "{version}");

    // A short name maps as on the Sylabs library; the OCI API is under /library/.
    let a = http_get(
        &server.url("/v1/oci-redirect?namespace=alpine&accessTypes=pull&mapped=1"),
        &[],
    );
    assert_eq!(a.status, 200);
    let redirect = a.json();
    assert_eq!(redirect["name"], "library/default/alpine", "{redirect}");
    assert_eq!(
        redirect["url"],
        format!("{}/library/", server.base).as_str()
    );
    let token = redirect["token"].as_str().unwrap();
    assert!(!token.is_empty(), "library clients need a token to send");

    // Under /library/v2 a request without credentials is challenged, even
    // on an open registry; with the redirect's token it is served.
    let url = server.url("/library/v2/library/default/alpine/manifests/latest");
    let a = http_get(&url, &[]);
    assert_eq!(a.status, 401);
    assert!(
        a.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer "))
    );
    let a = http_get(&url, &[&format!("Authorization: Bearer {token}")]);
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    // /v2 is untouched: an open registry answers without credentials.
    let a = http_get(
        &server.url("/v2/library/default/alpine/manifests/latest"),
        &[],
    );
    assert_eq!(a.status, 404);

    // The legacy library API is not served, and says so in its own format.
    for path in [
        "/v1/entities/hpc",
        "/v1/containers/hpc/tools/app",
        "/v1/search?value=app",
    ] {
        let a = http_get(&server.url(path), &[]);
        assert_eq!(a.status, 404, "{path}");
        let e = a.json();
        assert_eq!(e["error"]["code"], 404, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not served"),
            "{e}"
        );
    }
    let a = http_get(
        &server.url("/v1/images/hpc/tools/absent:latest?arch=amd64"),
        &[],
    );
    assert_eq!(a.status, 404);
    let a = http_get(&server.url("/v1/images/NOT/A/library/path:x"), &[]);
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
}
