//! The committed `crds/*.yaml` and the Helm chart's `charts/berth/crds/*.yaml`
//! must be exactly what the Rust types generate (`cargo run -p berth-operator
//! -- crdgen` rewrites both).

use berth_operator::crd::{Registry, Repository, crd_files};
use kube::CustomResourceExt;

#[test]
fn committed_crds_match_the_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "charts/berth/crds"] {
        let dir = root.join(dir);
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        committed.sort();
        let files = crd_files().expect("crds serialise");
        let mut generated: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        generated.sort();
        assert_eq!(
            committed,
            generated,
            "{} holds other files than the CRDs",
            dir.display()
        );
        for (name, want) in files {
            let path = dir.join(name);
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} differs from what the types generate: run `cargo run -p berth-operator -- crdgen` and commit it",
                path.display()
            );
        }
    }
}

#[test]
fn crds_carry_names_columns_status_and_rules() {
    let reg = serde_json::to_value(Registry::crd()).expect("json");
    assert_eq!(reg["spec"]["group"], "berth.dev");
    assert_eq!(reg["spec"]["names"]["shortNames"][0], "reg");
    assert_eq!(reg["spec"]["names"]["plural"], "registries");
    let v = &reg["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        cols,
        [
            "Endpoint",
            "Replicas",
            "Ready Replicas",
            "Ready",
            "Reason",
            "Age"
        ]
    );
    let text = reg.to_string();
    assert!(text.contains("more than one replica needs shared storage"));
    assert!(text.contains("x-kubernetes-validations"));
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["replicas"]["default"], 1);
    assert!(
        spec["properties"]["replicas"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("Number of registry pods")
    );

    let repo = serde_json::to_value(Repository::crd()).expect("json");
    assert_eq!(repo["spec"]["names"]["shortNames"][0], "repo");
    assert!(repo["spec"]["versions"][0]["subresources"]["status"].is_object());
}
