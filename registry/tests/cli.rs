//! The command line: `check-config`, flags over env over file, the
//! maintenance commands' refusals and dry runs, errors said once, a clean
//! shutdown.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn check_config_names_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "listen: 127.0.0.1:5999\ndata_dir: /var/lib/berth\nlog_format: json\n",
    )
    .unwrap();
    let out = berth().arg("check-config").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5999"));

    for (text, field) in [
        ("listen: not-an-address\n", "listen"),
        ("log_format: xml\n", "log_format"),
        ("upload_expiry_seconds: -1\n", "upload_expiry_seconds"),
        ("listne: 127.0.0.1:1\n", "listne"),
    ] {
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, text).unwrap();
        let out = berth().arg("check-config").arg(&bad).output().unwrap();
        assert!(!out.status.success(), "{text} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(field), "{text}: {stderr}");
    }
}

#[test]
fn flags_win_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("berth.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{file_port}\ndata_dir: {}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();

    let start = |env: Option<u16>, flag: Option<u16>| {
        let mut cmd = berth();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::null());
        if let Some(p) = env {
            cmd.env("BERTH_LISTEN", format!("127.0.0.1:{p}"));
        }
        if let Some(p) = flag {
            cmd.arg("--listen").arg(format!("127.0.0.1:{p}"));
        }
        cmd.spawn().unwrap()
    };
    for (env, flag, expect) in [
        (None, None, file_port),
        (Some(env_port), None, env_port),
        (Some(env_port), Some(flag_port), flag_port),
    ] {
        let mut child = start(env, flag);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers(expect) {
            assert!(
                Instant::now() < deadline,
                "berth never listened on {expect}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(
        dir.path().join("data/metadata.db").exists(),
        "data_dir from the file was not used"
    );
}

#[test]
fn new_robot_prints_a_secret_and_its_hash() {
    use sha2::Digest as _;
    let out = berth().args(["new-robot", "robot$ci"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("#   "))
        .expect("secret line");
    assert_eq!(secret.len(), 64);
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    assert!(text.contains(&format!("password_sha256: {hash}")), "{text}");
    assert!(text.contains("- name: robot$ci"));
    let again = berth().args(["new-robot", "robot$ci"]).output().unwrap();
    assert_ne!(
        again.stdout,
        text.as_bytes(),
        "two robots got the same secret"
    );
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = berth().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Maintenance commands on a directory with no registry refuse, and write
/// nothing there.
#[test]
fn maintenance_refuses_a_directory_with_no_registry() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("nothing-here");
    std::fs::create_dir(&empty).unwrap();
    let data_dir = empty.to_str().unwrap();
    for args in [
        vec!["usage", "--data-dir", data_dir],
        vec!["gc", "--dry-run", "--data-dir", data_dir],
        vec!["gc", "--data-dir", data_dir],
        vec![
            "retention",
            "--keep-last",
            "1",
            "--repository",
            "a",
            "--data-dir",
            data_dir,
        ],
    ] {
        let (ok, _, stderr) = run(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains("no registry data in"), "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches("no registry data").count(),
            1,
            "said twice: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "something was written"
    );
}

/// A dry run changes nothing on disk and says what the grace period kept;
/// usage prints the stored totals; `--keep-untagged` takes no value.
#[tokio::test]
async fn gc_dry_run_writes_nothing_and_says_what_grace_kept() {
    let server = common::Server::start_local(&[]);
    let c = common::Client::new(&server);
    let (_, first) = c.push_image("dry/app", "v1", b"first layer").await;
    c.push_image("dry/app", "v1", b"second layer").await; // v1 moves: the first is untagged
    let data_dir = server.data_dir.to_str().unwrap();
    let before = snapshot(&server.data_dir);
    let (ok, out, err) = run(&["gc", "--dry-run", "--data-dir", data_dir]);
    assert!(ok, "{err}");
    assert!(out.contains("would delete: 0 untagged manifests"), "{out}");
    assert!(
        out.contains("kept for the grace period (1h): 1 manifests, 1 blobs (11 bytes)"),
        "{out}"
    );
    assert_eq!(snapshot(&server.data_dir), before, "a dry run wrote");
    let (ok, out, _) = run(&[
        "gc",
        "--dry-run",
        "--grace-seconds",
        "0",
        "--keep-untagged",
        "--data-dir",
        data_dir,
    ]);
    assert!(ok);
    assert!(out.contains("would delete: 0 untagged manifests"), "{out}");
    let (ok, out, _) = run(&[
        "gc",
        "--dry-run",
        "--grace-seconds",
        "0",
        "--keep-untagged=false",
        "--data-dir",
        data_dir,
    ]);
    assert!(ok);
    assert!(out.contains("would delete: 1 untagged manifests"), "{out}");
    let (ok, out, _) = run(&["usage", "--data-dir", data_dir]);
    assert!(ok);
    assert!(out.contains("dry/app"), "{out}");
    assert!(out.contains("stored: 3 blobs, 60 bytes"), "{out}");
    let r = c
        .req(
            reqwest::Method::GET,
            &format!("/v2/dry/app/manifests/{first}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the dry run deleted");
}

/// Sizes and modification times of the files under `dir` (what a write
/// would change), but SQLite's shared-memory WAL index (`-shm`), which any
/// reader of the database updates.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut files: Vec<_> = common::files_under(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            Some((p, meta.len(), meta.modified().ok()?))
        })
        .collect();
    files.sort();
    files
}

/// check-config checks what serve would: the files the config names.
/// It prints YAML, and a closed pipe ends it quietly.
#[test]
fn check_config_checks_the_files_it_names_and_prints_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let bad_policy = write(
        "bad-policy.yaml",
        "rules:\n- repositories: [a]\n  subjects: [anonymous]\n  actions: [pul]\n",
    );
    let config = write("c1.yaml", &format!("policy_file: {bad_policy}\n"));
    let (ok, _, err) = run(&["check-config", &config]);
    assert!(!ok);
    assert!(
        err.contains("bad-policy.yaml") && err.contains("rules[0].actions"),
        "{err}"
    );
    let config = write(
        "c2.yaml",
        &format!("policy_file: {}/missing.yaml\n", dir.path().display()),
    );
    let (ok, _, err) = run(&["check-config", &config]);
    assert!(!ok);
    assert!(err.contains("missing.yaml"), "{err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "said twice: {err}"
    );
    let good_policy = write("policy.yaml", "anonymous_pull: true\n");
    let users = write("htpasswd", "alice:{SHA}nope\n");
    let config = write(
        "c3.yaml",
        &format!("policy_file: {good_policy}\nhtpasswd_file: {users}\n"),
    );
    let (ok, _, err) = run(&["check-config", &config]);
    assert!(!ok);
    assert!(err.contains("line 1") && err.contains("bcrypt"), "{err}");
    let config = write(
        "c4.yaml",
        &format!("policy_file: {good_policy}\nlisten: 127.0.0.1:5999\n"),
    );
    let (ok, out, err) = run(&["check-config", &config]);
    assert!(ok, "{err}");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    assert_eq!(yaml["listen"], "127.0.0.1:5999");
    assert_eq!(yaml["token_expiry_seconds"], 300);
    assert_eq!(yaml["gc_grace_seconds"], 3600);
    // `| head -2`: the reader goes away; no panic, no error.
    let mut child = berth()
        .args(["check-config", &config])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let err = run(&["check-config", &write("c5.yaml", "storage: disk\n")]).2;
    assert_eq!(err.matches("storage").count(), 1, "said twice: {err}");
}

/// A fatal error is printed once, and names the listener that could not bind.
#[test]
fn serve_says_once_which_address_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (flag, what) in [("--listen", "the API"), ("--metrics-listen", "metrics")] {
        let out = berth()
            .args(["serve", flag, &addr])
            .args(if flag == "--listen" {
                ["--metrics-listen", "127.0.0.1:0"]
            } else {
                ["--listen", "127.0.0.1:0"]
            })
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("cannot listen for {what} on {addr}")),
            "{stderr}"
        );
        assert_eq!(
            stderr.matches("Address already in use").count(),
            1,
            "said twice: {stderr}"
        );
    }
}

/// A clean shutdown leaves no SQLite -wal or -shm behind.
#[test]
fn sigterm_checkpoints_the_database() {
    let mut server = common::Server::start_local(&[]);
    let data = server.data_dir.clone();
    assert!(data.join("metadata.db-wal").exists());
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while data.join("metadata.db-wal").exists() || data.join("metadata.db-shm").exists() {
        assert!(Instant::now() < deadline, "-wal or -shm left after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("shutting down"));
    server.kill();
}
