//! What Berth reads from SIF headers, against what `siftool` prints for the
//! same file: the API, `berth sif` and `berth ls`; and layers that are not
//! readable SIFs, which are stored and served all the same.

use super::*;

/// `siftool SUBCOMMAND ARGS...` as text.
fn siftool(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(run(dir, "siftool", args)).expect("siftool prints UTF-8")
}

/// `Key: value` lines (siftool header, siftool info).
fn fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// siftool's `2006-01-02 15:04:05 +0000 UTC` as RFC 3339.
fn siftool_time(t: &str) -> String {
    let t = t.trim_end_matches(" +0000 UTC");
    format!("{}Z", t.replacen(' ', "T", 1))
}

/// `berth ARGS...` (the binary under test).
fn berth(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn sif_headers_are_read_as_siftool_reads_them() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    let sif = make_sif(dir, "signed", "arm64", true);
    let name = "hpc/described/app";
    apptainer(
        dir,
        [
            "oras-push",
            "-plain-http",
            s(&sif.path),
            &format!("oras://{}/{name}:v2", server.addr),
        ],
    );

    let api = sif_api(&server, name, "v2");
    assert_eq!(api["repository"], name);
    let image = &api["images"][0];
    assert_eq!(image["layer"]["digest"], sif.digest.as_str(), "{api}");
    assert_eq!(image["layer"]["title"], "signed.sif", "{api}");
    assert!(image["platform"].is_null(), "{api}");
    let d = &image["sif"];

    // The global header.
    let header = fields(&siftool(dir, &["header", s(&sif.path)]));
    assert_eq!(d["id"], header["ID"].as_str(), "{d}");
    assert_eq!(d["architecture"], header["Primary Architecture"].as_str());
    assert_eq!(d["version"], header["Version"].as_str());
    assert_eq!(
        d["launch_script"].as_str().unwrap().trim_end(),
        header["Launch Script"]
    );
    assert_eq!(
        d["descriptors_total"].to_string(),
        header["Descriptors Total"]
    );
    assert_eq!(
        d["descriptors_free"].to_string(),
        header["Descriptors Free"]
    );
    assert_eq!(d["data_offset"].to_string(), header["Data Offset"]);
    let created = run(
        dir,
        "date",
        [
            "-u",
            "-d",
            &format!("@{}", d["created"]),
            "+%Y-%m-%dT%H:%M:%SZ",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&created).trim(),
        siftool_time(&header["Created At"])
    );

    // Every object, as siftool lists it, and its details as siftool info
    // prints them.
    let objects = d["objects"].as_array().unwrap();
    let listed: Vec<String> = siftool(dir, &["list", s(&sif.path)])
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    assert_eq!(objects.len(), listed.len(), "{listed:?}");
    for o in objects {
        let id = o["id"].to_string();
        let info = fields(&siftool(dir, &["info", &id, s(&sif.path)]));
        assert_eq!(o["offset"].to_string(), info["Offset"], "object {id}");
        assert_eq!(o["size"].to_string(), info["Size"], "object {id}");
        assert_eq!(
            o["group"].as_u64().map_or("NONE".into(), |g| g.to_string()),
            info["Group ID"],
            "object {id}"
        );
        match o["type"].as_str().unwrap() {
            "partition" => {
                let p = &o["partition"];
                assert_eq!(info["Data Type"], "FS");
                assert_eq!(info["Filesystem Type"], "Squashfs");
                assert_eq!(p["filesystem"], "squashfs");
                assert_eq!(info["Partition Type"], "*System");
                assert_eq!(p["type"], "primary-system");
                assert_eq!(p["architecture"], info["Architecture"].as_str());
            }
            "signature" => {
                let sig = &o["signature"];
                assert_eq!(info["Data Type"], "Signature");
                assert_eq!(info["Hash Type"], "SHA-256");
                assert_eq!(sig["hash"], "sha256");
                assert_eq!(sig["fingerprint"], info["Entity"].as_str());
                assert_eq!(sig["fingerprint"].as_str(), sif.fingerprint.as_deref());
                assert_eq!(info["Linked ID"], format!("{} (G)", o["link"]));
                assert_eq!(o["link_is_group"], true);
            }
            "deffile" => assert_eq!(info["Data Type"], "Def.FILE"),
            "labels" => assert_eq!(info["Data Type"], "JSON.Labels"),
            other => panic!("unexpected object type {other}: {o}"),
        }
    }
    assert_eq!(d["signed"], true);
    assert_eq!(d["encrypted"], false);
    assert_eq!(d["fingerprints"][0].as_str(), sif.fingerprint.as_deref());

    // berth sif prints siftool's rows; berth ls says what the tag is.
    let printed = berth(&["sif", "--url", &server.base, &format!("{name}:v2")]);
    let rows: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows, listed, "berth sif:\n{printed}");
    assert!(
        printed.contains(&format!(
            "Signed by: {}",
            sif.fingerprint.as_deref().unwrap()
        )),
        "{printed}"
    );
    let as_json: Value = serde_json::from_str(&berth(&[
        "sif",
        "--json",
        "--url",
        &server.base,
        &format!("{name}:v2"),
    ]))
    .unwrap();
    assert_eq!(as_json, api);
    let ls = berth(&["ls", "--url", &server.base, name]);
    assert!(ls.contains("SIF arm64 signed"), "{ls}");
}

#[test]
fn layers_that_are_not_readable_sifs_are_stored_and_not_described() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path();
    let real = std::fs::read(make_sif(dir, "real", "amd64", false).path).unwrap();

    // Each file, and why it is not described.
    let mut truncated = real[..8192].to_vec();
    truncated.extend(b"cut short");
    let mut far_table = real.clone();
    far_table[96..104].copy_from_slice(&(64i64 << 20).to_le_bytes());
    let mut bad_version = real.clone();
    bad_version[42..45].copy_from_slice(b"99\0");
    let mut garbage = b"SIF_MAGIC\0".to_vec();
    garbage.extend(nonce().as_bytes().repeat(200));
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("garbage", garbage, "no SIF magic"),
        ("truncated", truncated, "only 8201 bytes were given"),
        ("far-table", far_table, "beyond the 1048576 bytes"),
        ("bad-version", bad_version, "version `99`"),
        ("tiny", b"SIF".to_vec(), "shorter than a SIF header"),
    ];
    for (name, bytes, why) in cases {
        let file = dir.join(format!("{name}.sif"));
        std::fs::write(&file, &bytes).unwrap();
        let reference = format!("{}/hpc/broken/{name}:1", server.addr);
        run(
            dir,
            "oras",
            [
                "push",
                "--plain-http",
                &reference,
                "--config",
                &format!("{}:{SIF_CONFIG}", write_config(dir)),
                &format!("{name}.sif:{SIF_LAYER}"),
            ],
        );
        let out = dir.join(format!("pulled-{name}"));
        run(
            dir,
            "oras",
            ["pull", "--plain-http", "-o", s(&out), &reference],
        );
        assert!(
            std::fs::read(out.join(format!("{name}.sif"))).unwrap() == bytes,
            "{name}"
        );
        let api = sif_api(&server, &format!("hpc/broken/{name}"), "1");
        let image = &api["images"][0];
        assert!(image["sif"].is_null(), "{name}: {api}");
        assert!(
            image["error"].as_str().unwrap().contains(why),
            "{name}: {api}"
        );
    }
}

/// `{}` in a file of `dir`, for oras's --config; its name.
fn write_config(dir: &Path) -> &'static str {
    std::fs::write(dir.join("config.json"), b"{}").unwrap();
    "config.json"
}
