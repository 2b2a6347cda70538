//! Test harness: runs the real `berth` binary on an ephemeral port with its
//! own data directory, and stops it when dropped.
//!
//! The backend comes from `BERTH_TEST_BACKEND`: unset (or `sqlite-fs`) is
//! the embedded default, SQLite and the local disk; `postgres-s3` gives each
//! server a database of its own on `BERTH_TEST_DATABASE_URL` and a key
//! prefix of its own in `BERTH_TEST_S3_BUCKET` at `BERTH_TEST_S3_ENDPOINT`
//! (tests/backends/up.sh starts both). Tests about the local disk itself
//! (files, sendfile, a full disk) use [`Server::start_local`].
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod tools;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT` of `/metrics`
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    /// Flags that put this server on PostgreSQL + S3 (kept across restarts).
    backend_args: Vec<String>,
}

/// Which backend the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteFs,
    PostgresS3,
}

impl Backend {
    pub fn current() -> Backend {
        match std::env::var("BERTH_TEST_BACKEND").as_deref() {
            Ok("postgres-s3") => Backend::PostgresS3,
            Ok("") | Ok("sqlite-fs") | Err(_) => Backend::SqliteFs,
            Ok(other) => panic!("BERTH_TEST_BACKEND={other}: expected sqlite-fs or postgres-s3"),
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "BERTH_TEST_BACKEND=postgres-s3 needs {name}: start the servers with \
             `eval \"$(tests/backends/up.sh)\"` (bash .ci/run does)"
        )
    })
}

/// A fresh PostgreSQL database (its URL) and S3 prefix, as `berth serve`
/// flags, on the servers of tests/backends/up.sh.
pub fn postgres_s3_args() -> Vec<String> {
    postgres_s3_args_on(
        &env("BERTH_TEST_DATABASE_URL"),
        &env("BERTH_TEST_S3_ENDPOINT"),
        &env("BERTH_TEST_S3_BUCKET"),
    )
}

/// A fresh database on the PostgreSQL server of `admin_url` and a fresh
/// prefix in `bucket` at `endpoint`, as `berth serve` flags.
pub fn postgres_s3_args_on(admin_url: &str, endpoint: &str, bucket: &str) -> Vec<String> {
    let name = format!("berth_t_{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("psql")
        .args([admin_url, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "creating a test database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("{admin_url} has no database part"),
    };
    vec![
        "--database-url".into(),
        url,
        "--storage".into(),
        "s3".into(),
        "--s3-bucket".into(),
        bucket.into(),
        "--s3-endpoint".into(),
        endpoint.into(),
        "--s3-prefix".into(),
        name,
    ]
}

/// The address in the `listen` field of the log line with `message`, in
/// text (`listen=ADDR`) or JSON (`"listen":"ADDR"`) format.
fn listen_address(log: &str, message: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(message))?;
    let at = line
        .find("listen=")
        .map(|i| i + "listen=".len())
        .or_else(|| {
            line.find("\"listen\":\"")
                .map(|i| i + "\"listen\":\"".len())
        })?;
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// A plain HTTP/1.1 GET; returns the status code (0 if nothing answered).
fn http_status(addr: &str, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut buf = [0u8; 12];
    if s.read_exact(&mut buf).is_err() {
        return 0;
    }
    std::str::from_utf8(&buf[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

impl Server {
    /// A fresh registry with an empty data directory.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// A fresh registry with extra `berth serve` flags, on the backend of
    /// `BERTH_TEST_BACKEND`.
    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let backend = match Backend::current() {
            Backend::SqliteFs => Vec::new(),
            Backend::PostgresS3 => postgres_s3_args(),
        };
        Self::start_in(data_dir, dir, args, backend)
    }

    /// A fresh registry on SQLite and the local disk, whatever
    /// `BERTH_TEST_BACKEND` says: for tests about the local disk itself.
    pub fn start_local(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        Self::start_in(data_dir, dir, args, Vec::new())
    }

    /// A fresh registry on the backend `backend_args` name.
    pub fn start_on_backend(backend_args: Vec<String>, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        Self::start_in(data_dir, dir, args, backend_args)
    }

    /// The flags that put this server on its backend (empty: the default).
    pub fn backend_args(&self) -> &[String] {
        &self.backend_args
    }

    /// A registry on `data_dir` (which may hold data already, or be on a
    /// disk of the test's making); its log stays in a temporary directory.
    pub fn start_on(data_dir: PathBuf, args: &[&str]) -> Server {
        Self::start_in(
            data_dir,
            tempfile::tempdir().expect("tempdir"),
            args,
            Vec::new(),
        )
    }

    fn start_in(
        data_dir: PathBuf,
        dir: tempfile::TempDir,
        args: &[&str],
        backend_args: Vec<String>,
    ) -> Server {
        let mut server = Server {
            addr: String::new(),
            base: String::new(),
            metrics_addr: String::new(),
            data_dir,
            log_path: dir.path().join("berth.log"),
            child: None,
            _dir: Some(dir),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            backend_args,
        };
        server.spawn();
        server
    }

    /// Starts `berth serve` on ports the kernel picks, and learns them from
    /// its log (picking free ports first races with other tests' servers).
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let logged_before = self.log().len();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.backend_args)
            .args(&self.extra_args)
            .env("BERTH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn berth");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (api, metrics) = loop {
            let log = self.log();
            let this_run = &log[logged_before.min(log.len())..];
            if let (Some(api), Some(metrics)) = (
                listen_address(this_run, "berth is serving the OCI distribution API"),
                listen_address(this_run, "metrics on /metrics"),
            ) {
                break (api, metrics);
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("berth exited with {status}; log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "berth did not start; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.addr = api;
        self.base = format!("http://{}", self.addr);
        self.metrics_addr = metrics;
        assert_eq!(http_status(&self.addr, "/healthz"), 200, "{}", self.log());
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_path.clone()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `url("/v2/")` -> `http://127.0.0.1:PORT/v2/`
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; then the exit status, waited for up to `within`.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kill -9 and start again on the same data directory (new port).
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Peak resident memory of the server process, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        let mut s = TcpStream::connect(&self.metrics_addr).expect("metrics listener");
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("field in /proc status")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------ client helpers

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Sends `request` as is over a new connection and returns what comes back
/// before the server closes or stops sending (2 s).
pub fn raw_request(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("read timeout");
    s.write_all(request.as_bytes()).expect("write request");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts the status and spec error code of an error response; returns its body.
pub async fn assert_error(
    r: reqwest::Response,
    status: reqwest::StatusCode,
    code: &str,
) -> serde_json::Value {
    assert_eq!(r.status(), status, "{:?}", r.headers());
    let body: serde_json::Value = r.json().await.expect("a JSON error body");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(
        !body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{body}"
    );
    body
}

/// An HTTP client of one registry, with the pushes tests repeat.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(server: &Server) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: server.base.clone(),
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Single-POST monolithic upload; asserts 201 and returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .body(data.to_vec())
            .send()
            .await
            .expect("POST blob");
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        digest
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.req(
            reqwest::Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
        )
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("PUT manifest")
    }

    /// Pushes a config, one layer and an OCI image manifest tagged `tag`;
    /// asserts 201 and returns (manifest bytes, manifest digest).
    pub async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (Vec<u8>, String) {
        let config = br#"{"os":"linux","architecture":"amd64"}"#;
        let config_digest = self.push_blob(repo, config).await;
        let layer_digest = self.push_blob(repo, layer).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
        }))
        .expect("manifest JSON");
        let r = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// How to reach a server's stores from outside it: for the maintenance
/// commands, and to look at what its blob store holds.
#[derive(Clone)]
pub struct Stores {
    pub data_dir: PathBuf,
    backend_args: Vec<String>,
}

impl Server {
    pub fn stores(&self) -> Stores {
        Stores {
            data_dir: self.data_dir.clone(),
            backend_args: self.backend_args.clone(),
        }
    }
}

impl Stores {
    /// Every object in the blob store, by key relative to the store's root
    /// (`blobs/sha256/ab/<hex>`, `uploads/<id>/…`, `staging/…`), with its
    /// size: files under the data directory, or the objects under the
    /// server's prefix in the bucket — and there, every multipart upload
    /// not completed nor aborted, as `multipart:<key>` (size 0).
    pub fn objects(&self) -> std::collections::BTreeMap<String, u64> {
        let prefix = self
            .backend_args
            .iter()
            .position(|a| a == "--s3-prefix")
            .map(|i| self.backend_args[i + 1].clone());
        match prefix {
            None => {
                let root = self.data_dir.join("storage");
                files_under(&root)
                    .into_iter()
                    .filter_map(|p| {
                        let size = std::fs::metadata(&p).ok()?.len();
                        let key = p.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
                        Some((key, size))
                    })
                    .collect()
            }
            Some(prefix) => {
                let mut objects = list_bucket(&prefix);
                for key in open_multipart_uploads(&prefix) {
                    objects.insert(format!("multipart:{key}"), 0);
                }
                objects
            }
        }
    }

    /// Runs `berth ARGS` (a maintenance command) on these stores; returns
    /// its stdout, failing the test if it fails.
    pub fn berth(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.backend_args)
            .env("BERTH_LOG", "warn")
            .output()
            .expect("run berth");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// The objects under `prefix` in the test bucket: key after the prefix -> size.
fn list_bucket(prefix: &str) -> std::collections::BTreeMap<String, u64> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(env("BERTH_TEST_S3_BUCKET"))
        .with_endpoint(env("BERTH_TEST_S3_ENDPOINT"))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .build()
        .expect("S3 client");
    let root = object_store::path::Path::from(prefix);
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let objects: Vec<object_store::ObjectMeta> = store
                    .list(Some(&root))
                    .try_collect()
                    .await
                    .expect("list the bucket");
                objects
                    .into_iter()
                    .map(|m| {
                        let key = m
                            .location
                            .as_ref()
                            .trim_start_matches(prefix)
                            .trim_start_matches('/');
                        (key.to_string(), m.size)
                    })
                    .collect()
            })
        })
        .join()
        .expect("listing thread")
    })
}

/// The keys (after `prefix`) of the multipart uploads open under `prefix`
/// in the test bucket: S3's ListMultipartUploads, signed by curl.
fn open_multipart_uploads(prefix: &str) -> Vec<String> {
    // Parameters sorted and encoded as SigV4 signs them (the prefix is a
    // test's own name: letters, digits, `_`).
    let url = format!(
        "{}/{}?prefix={prefix}%2F&uploads=",
        env("BERTH_TEST_S3_ENDPOINT"),
        env("BERTH_TEST_S3_BUCKET")
    );
    let empty_body = sha256(b"");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-H"])
        .arg(format!(
            "x-amz-content-sha256: {}",
            empty_body.trim_start_matches("sha256:")
        ))
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!(
            "{}:{}",
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY")
        ))
        .arg(&url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "ListMultipartUploads: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = String::from_utf8_lossy(&out.stdout);
    xml.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>"))
        .map(|(key, _)| {
            key.trim_start_matches(prefix)
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}
