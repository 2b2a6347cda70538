//! The upstream of the mirror tests: a real CNCF distribution 3.x on
//! loopback (built by tests/tools/install.sh), its access log counting the
//! requests Berth sends it, optionally behind basic auth; and a proxy in
//! front of it that can answer 429 instead (a fault a real upstream gives
//! only under real load).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::common::{OCI_MANIFEST, sha256};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Upstream {
    pub addr: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// (user, password) when behind basic auth.
    pub credentials: Option<(String, String)>,
}

fn distribution_bin() -> String {
    std::env::var("BERTH_DISTRIBUTION_BIN").unwrap_or_else(|_| {
        panic!("BERTH_DISTRIBUTION_BIN is not set: `eval \"$(tests/tools/install.sh --paths)\"` (bash .ci/run does)")
    })
}

impl Upstream {
    pub fn start() -> Upstream {
        Self::start_with(None)
    }

    /// Behind basic auth (distribution's htpasswd), as `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Upstream {
        Self::start_with(Some((user.to_string(), password.to_string())))
    }

    fn start_with(credentials: Option<(String, String)>) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let mut upstream = Upstream {
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            child: None,
            credentials,
        };
        upstream.run();
        upstream
    }

    fn run(&mut self) {
        let root = self.dir.path().join("data");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
            root.display(),
            self.addr
        );
        if let Some((user, password)) = &self.credentials {
            let htpasswd = self.dir.path().join("htpasswd");
            let hash = bcrypt::hash(password, 5).unwrap();
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = self.dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(distribution_bin())
            .arg("serve")
            .arg(&config_path)
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("run distribution");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "distribution did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("upstream.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests the upstream answered (its access log) whose request line
    /// starts with `method path_prefix`, e.g. ("GET", "/v2/team/app/blobs/").
    pub fn requests(&self, method: &str, path_prefix: &str) -> usize {
        let needle = format!("\"{method} {path_prefix}");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Pushes an image of `layers` to `repo:tag` upstream; returns the
    /// manifest's digest and the layers' digests.
    pub async fn push(&self, repo: &str, tag: &str, layers: &[Vec<u8>]) -> (String, Vec<String>) {
        let http = reqwest::Client::new();
        let auth = |r: reqwest::RequestBuilder| match &self.credentials {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        };
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#).into_bytes();
        let mut descriptors = Vec::new();
        let mut digests = Vec::new();
        for (i, blob) in std::iter::once(&config).chain(layers).enumerate() {
            let digest = sha256(blob);
            let r = auth(http.post(format!("{}/v2/{repo}/blobs/uploads/", self.url())))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let sep = if location.contains('?') { '&' } else { '?' };
            let r = auth(http.put(format!("{location}{sep}digest={digest}")))
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            if i > 0 {
                descriptors.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest, "size": blob.len()
                }));
                digests.push(digest);
            } else {
                digests.push(digest);
            }
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": descriptors
        }))
        .unwrap();
        let r = auth(http.put(format!("{}/v2/{repo}/manifests/{tag}", self.url())))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        (sha256(&manifest), digests)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A proxy to the upstream that answers 429 while `throttled` is set. One
/// request per connection (it asks the upstream to close after each), so
/// the throttle applies to the very next request. The mirror only sends
/// GET and HEAD, which have no body.
pub struct Throttle {
    pub addr: String,
    pub throttled: Arc<AtomicBool>,
}

impl Throttle {
    pub fn to(upstream: &str) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let throttled = Arc::new(AtomicBool::new(false));
        let (flag, upstream) = (throttled.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (flag, upstream) = (flag.clone(), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, &flag));
            }
        });
        Throttle { addr, throttled }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve(mut client: TcpStream, upstream: &str, throttled: &AtomicBool) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    if throttled.load(Ordering::SeqCst) {
        let body =
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limited","detail":null}]}"#;
        let _ = write!(
            client,
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let head = String::from_utf8_lossy(&head);
    let mut forwarded: String = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("connection: close\r\n\r\n");
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(forwarded.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut server, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
}
