//! Correctness of berth-bench itself (no timings asserted): every workload in
//! quick mode against a real `berth`, with zero errors and verified digests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// The `berth` binary of the same build (CI builds it before the tests);
/// built here when missing, e.g. under `cargo test -p berth-bench`.
fn berth_bin() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_berth-bench"))
        .parent()
        .expect("binary dir")
        .to_path_buf();
    let bin = dir.join("berth");
    if !bin.exists() {
        let profile_release = dir.ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "berth-registry", "--bin", "berth"]);
        if profile_release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build");
        assert!(st.success(), "building berth failed");
    }
    bin
}

struct Berth {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Berth {
    fn start() -> Berth {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(berth_bin())
            .arg("serve")
            .args(["--listen", &addr])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "berth did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Berth {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn quick_run_against_berth_has_no_errors() {
    let berth = Berth::start();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let json = out_dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args(["run", "--quick", "--no-progress", "--server", "berth"])
        // Dropping the page cache would slow everything else on the machine.
        .arg("--keep-page-cache")
        .args(["--base", &format!("http://{}", berth.addr)])
        .args(["--pid", &berth.child.id().to_string()])
        .args([
            "--large-mib",
            "16",
            "--hot-secs",
            "1",
            "--list-count",
            "120",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run berth-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "berth-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid json");
    let results = v["results"].as_array().expect("results array");
    let names: Vec<&str> = results
        .iter()
        .filter_map(|r| r["workload"].as_str())
        .collect();
    for w in [
        "large-push",
        "large-pull",
        "large-pull-raw",
        "small-push",
        "small-pull",
        "hot-get",
        "hot-head",
        "catalog-full",
        "tags-full",
        "chunked-upload",
        "chunked-upload-1m",
        "chunked-upload-64m",
        "cold-pull",
        "hot-get-under-cold-pull",
        "warm-pull",
        "hot-get-under-warm-pull",
    ] {
        assert!(names.contains(&w), "workload {w} missing from {names:?}");
    }
    for r in results {
        assert_eq!(r["errors"], 0, "errors in {r}");
        assert!(r["ops"].as_u64().unwrap_or(0) > 0, "no operations in {r}");
        // The server was probed: CPU and peak RSS are recorded.
        assert!(
            r["server_peak_rss_kib"].as_u64().unwrap_or(0) > 0,
            "no RSS in {r}"
        );
    }
    // The verified pull read the whole blob (a digest mismatch is an error).
    let pull = results
        .iter()
        .find(|r| r["workload"] == "large-pull")
        .expect("large-pull");
    assert_eq!(pull["bytes"], 16u64 << 20);
    // Every cold blob was pulled whole, each time.
    for w in ["cold-pull", "warm-pull"] {
        let r = results.iter().find(|r| r["workload"] == w).expect(w);
        assert_eq!(r["ops"], 4, "{r}");
        assert_eq!(r["bytes"], 4 * (32u64 << 20), "{r}");
    }
}

/// bench/mirror.sh's two steps against a plain berth: seed-image pushes an
/// image, pull-image pulls it whole from concurrent clients with every
/// digest checked, and fails when the manifest is not the one expected.
#[test]
fn seed_and_pull_image() {
    let berth = Berth::start();
    let base = format!("http://{}", berth.addr);
    let bench = env!("CARGO_BIN_EXE_berth-bench");
    let out = Command::new(bench)
        .args([
            "seed-image",
            "--base",
            &base,
            "--repo",
            "m/app",
            "--tag",
            "v1",
        ])
        .args(["--layers", "3", "--layer-mib", "1"])
        .output()
        .expect("run seed-image");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut words = stdout.split_whitespace();
    let digest = words.next().expect("digest").to_string();
    let size: u64 = words.next().expect("size").parse().expect("a size");
    assert!(digest.starts_with("sha256:") && size > 3 << 20, "{stdout}");

    let out_dir = tempfile::tempdir().expect("tempdir");
    let pull = |want: &str, json: &Path| {
        Command::new(bench)
            .args(["pull-image", "--no-progress", "--base", &base])
            .args(["--pid", &berth.child.id().to_string()])
            .args(["--repo", "m/app", "--tag", "v1", "--concurrency", "4"])
            .args(["--digest", want, "--workload", "cold-4", "--json"])
            .arg(json)
            .output()
            .expect("run pull-image")
    };
    let json = out_dir.path().join("pull.json");
    let out = pull(&digest, &json);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid json");
    let r = &v["results"][0];
    assert_eq!(r["workload"], "cold-4");
    assert_eq!(r["ops"], 4, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["bytes"], 4 * size, "{r}");

    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = pull(&wrong, &out_dir.path().join("wrong.json"));
    assert!(!out.status.success(), "a wrong manifest digest must fail");
}
