//! `berth-bench s3-meter` forwards bytes unchanged in both directions and
//! counts what was written: a fake S3 server that records what it received
//! and answers fixed bytes, a client that sends a PutObject and an
//! UploadPart through the proxy.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: \"e\"\r\n\r\nok";

/// Reads one request (head + Content-Length body) from `s`; None at EOF.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    buf.extend_from_slice(&body);
    Some(buf)
}

#[test]
fn forwards_unchanged_and_counts() {
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_addr = upstream.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let (mut s, _) = upstream.accept().expect("accept");
        while let Some(req) = read_request(&mut s) {
            tx.send(req).expect("send");
            s.write_all(ANSWER).expect("answer");
        }
    });

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("counts.json");
    let mut meter = Command::new(env!("CARGO_BIN_EXE_berth-bench"))
        .args(["s3-meter", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &up_addr.to_string()])
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3-meter");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("s3-meter does not listen: {e}"),
        }
    };

    let body = vec![7u8; 300_000];
    let mut put = format!(
        "PUT /bucket/p/tail-1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: AWS4-HMAC-SHA256 x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    put.extend_from_slice(&body);
    let part = format!(
        "PUT /bucket/p/data?partNumber=1&uploadId=U HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 5\r\n\r\nhello"
    )
    .into_bytes();
    for req in [&put, &part] {
        client.write_all(req).expect("write");
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("upstream got it");
        assert!(got == *req, "the request reached the server changed");
        let mut answer = vec![0u8; ANSWER.len()];
        client.read_exact(&mut answer).expect("answer");
        assert_eq!(answer, ANSWER, "the answer reached the client changed");
    }

    // Counted before the last bytes went on; written within 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("counts written")).expect("json");
    assert_eq!(v["requests"], 2, "{v}");
    assert_eq!(v["body_bytes"], 300_005, "{v}");
    assert_eq!(v["copy_bytes"], 0, "{v}");
    assert_eq!(v["ops"]["PutObject"]["bytes"], 300_000, "{v}");
    assert_eq!(v["ops"]["UploadPart"]["count"], 1, "{v}");
    assert_eq!(
        v["response_bytes"].as_u64(),
        Some(2 * ANSWER.len() as u64),
        "{v}"
    );
    assert_eq!(v["unparsed_connections"], 0, "{v}");
    let _ = meter.kill();
    let _ = meter.wait();
}
