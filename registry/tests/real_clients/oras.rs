//! oras and a Singularity-style SIF artifact: push, pull, attach, discover.

use super::*;

#[test]
fn oras_pushes_pulls_attaches_and_discovers_a_sif_artifact() {
    let server = Server::start();
    let tmp = tempdir();
    let work = tmp.path();
    let n = nonce();
    let mut sif = b"SIF_MAGIC\0".to_vec();
    sif.extend(noise(1024 * 1024 + 7, n));
    std::fs::write(work.join("image.sif"), &sif).expect("write sif");
    std::fs::write(work.join("cfg.json"), b"{}").expect("write config");
    let reference = format!("{}/sif/img:1.0", server.addr);

    // push, as `singularity push oras://` does: SIF config + one SIF layer
    let pushed = run_json(
        work,
        "oras",
        [
            "push",
            "--plain-http",
            "--format",
            "json",
            &reference,
            "--config",
            &format!("cfg.json:{SIF_CONFIG}"),
            &format!("image.sif:{SIF_LAYER}"),
        ],
    );
    let digest = pushed["digest"]
        .as_str()
        .expect("oras push digest")
        .to_owned();

    let manifest = run(
        work,
        "oras",
        ["manifest", "fetch", "--plain-http", &reference],
    );
    assert_eq!(
        sha256(&manifest),
        digest,
        "served manifest bytes hash to the pushed digest"
    );
    let m: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    assert_eq!(m["config"]["mediaType"], SIF_CONFIG, "{m}");
    assert_eq!(m["config"]["digest"], sha256(b"{}").as_str(), "{m}");
    assert_eq!(m["layers"][0]["mediaType"], SIF_LAYER, "{m}");
    assert_eq!(m["layers"][0]["digest"], sha256(&sif).as_str(), "{m}");
    assert_eq!(m["layers"][0]["size"], sif.len(), "{m}");

    // pull it back
    let out = work.join("pulled");
    run(
        work,
        "oras",
        ["pull", "--plain-http", "-o", s(&out), &reference],
    );
    let got = std::fs::read(out.join("image.sif")).expect("pulled image.sif");
    assert!(
        got == sif,
        "pulled SIF differs from the pushed one ({} vs {} bytes)",
        got.len(),
        sif.len()
    );

    // attach a signature-like artifact through the referrers API
    let sig_type = "application/vnd.berth.test.signature";
    std::fs::write(work.join("sig.txt"), format!("signed {n}\n")).expect("write sig");
    let attached = run_json(
        work,
        "oras",
        [
            "attach",
            "--plain-http",
            "--distribution-spec",
            "v1.1-referrers-api",
            "--format",
            "json",
            "--artifact-type",
            sig_type,
            &reference,
            "sig.txt:text/plain",
        ],
    );
    let sig_digest = attached["digest"]
        .as_str()
        .expect("attach digest")
        .to_owned();

    let discover = |extra: &[&str]| -> Value {
        let mut args = vec![
            "discover",
            "--plain-http",
            "--distribution-spec",
            "v1.1-referrers-api",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        args.push(&reference);
        run_json(work, "oras", args)
    };
    let found = discover(&[]);
    assert_eq!(
        found["digest"],
        digest.as_str(),
        "discover subject: {found}"
    );
    let referrers = found["referrers"].as_array().expect("referrers array");
    let sig = referrers
        .iter()
        .find(|r| r["digest"] == sig_digest.as_str())
        .unwrap_or_else(|| panic!("attached {sig_digest} not among referrers: {found}"));
    assert_eq!(sig["artifactType"], sig_type, "{found}");
    assert_eq!(referrers.len(), 1, "{found}");

    // artifactType filtering
    let filtered = discover(&["--artifact-type", sig_type]);
    assert_eq!(
        filtered["referrers"].as_array().map(Vec::len),
        Some(1),
        "{filtered}"
    );
    let none = discover(&["--artifact-type", "application/vnd.berth.test.nothing"]);
    assert_eq!(
        none["referrers"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{none}"
    );

    // the referrer's content, by digest
    let sig_ref = format!("{}/sif/img@{sig_digest}", server.addr);
    let sig_manifest: Value = serde_json::from_slice(&run(
        work,
        "oras",
        ["manifest", "fetch", "--plain-http", &sig_ref],
    ))
    .expect("referrer manifest JSON");
    assert_eq!(
        sig_manifest["subject"]["digest"],
        digest.as_str(),
        "{sig_manifest}"
    );
    let sig_out = work.join("sig-pulled");
    run(
        work,
        "oras",
        ["pull", "--plain-http", "-o", s(&sig_out), &sig_ref],
    );
    assert_eq!(
        std::fs::read_to_string(sig_out.join("sig.txt")).expect("pulled sig.txt"),
        format!("signed {n}\n")
    );

    // oras's default mode decides from the registry (OCI-Subject header on the
    // manifest PUT, else a probe of the referrers API) whether to fall back to
    // the `sha256-<hex>` tag scheme; a registry serving the referrers API must
    // never get that tag.
    std::fs::write(work.join("sbom.json"), format!("{{\"sbom\":{n}}}")).expect("write sbom");
    let sbom = run_json(
        work,
        "oras",
        [
            "attach",
            "--plain-http",
            "--format",
            "json",
            "--artifact-type",
            "application/vnd.berth.test.sbom",
            &reference,
            "sbom.json:application/json",
        ],
    );
    let tags = String::from_utf8(run(
        work,
        "oras",
        [
            "repo",
            "tags",
            "--plain-http",
            &format!("{}/sif/img", server.addr),
        ],
    ))
    .expect("utf-8 tags");
    let tags: Vec<&str> = tags.lines().collect();
    assert_eq!(tags, ["1.0"], "no referrers fallback tag expected");
    let found = discover(&[]);
    let digests: Vec<&str> = found["referrers"]
        .as_array()
        .expect("referrers")
        .iter()
        .filter_map(|r| r["digest"].as_str())
        .collect();
    assert!(digests.contains(&sig_digest.as_str()), "{found}");
    assert!(
        digests.contains(&sbom["digest"].as_str().expect("sbom digest")),
        "{found}"
    );
}
