//! The command line: `check-config`, and flags over env over file.

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
