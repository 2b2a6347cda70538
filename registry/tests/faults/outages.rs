//! The database or the bucket going away under a running registry: a
//! private PostgreSQL and versitygw (tests/backends/up.sh in a directory
//! of this test's own) are stopped and started again while `berth` runs.
//! Clients get 503 UNAVAILABLE with Retry-After, readiness fails and says
//! which store, nothing acknowledged is lost, and everything works again
//! once the store is back, without a restart.

use super::*;
use common::postgres_s3_args_on;

/// PostgreSQL and versitygw of this test alone, stopped when dropped.
struct Backends {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/backends")
        .join(name)
}

impl Backends {
    fn start() -> Backends {
        // Under target/ rather than /tmp: the postgres user must reach it.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut backends = Backends {
            dir,
            env: Vec::new(),
        };
        backends.up();
        backends
    }

    /// Starts whichever server is down, on the port it had.
    fn up(&mut self) {
        let out = Command::new(script("up.sh"))
            .env("BERTH_BACKENDS_DIR", self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/backends/up.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.env = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Stops `postgres` or `versitygw`.
    fn down(&self, which: &str) {
        let status = Command::new(script("down.sh"))
            .arg(which)
            .env("BERTH_BACKENDS_DIR", self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "tests/backends/down.sh {which}");
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("up.sh did not print {name}"))
    }

    /// A registry on these servers; short database timeouts, so a request
    /// waits at most that long before it is told to retry.
    fn registry(&self) -> Server {
        let mut backend = postgres_s3_args_on(
            self.var("BERTH_TEST_DATABASE_URL"),
            self.var("BERTH_TEST_S3_ENDPOINT"),
            self.var("BERTH_TEST_S3_BUCKET"),
        );
        // The credentials as files, as a mounted Secret gives them.
        for (flag, var) in [
            ("--s3-access-key-id-file", "AWS_ACCESS_KEY_ID"),
            ("--s3-secret-access-key-file", "AWS_SECRET_ACCESS_KEY"),
        ] {
            let path = self.dir.path().join(var);
            std::fs::write(&path, format!("{}\n", self.var(var))).unwrap();
            backend.extend([flag.to_string(), path.display().to_string()]);
        }
        Server::start_on_backend(backend, &["--database-timeout-seconds", "2"])
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        let _ = Command::new(script("down.sh"))
            .env("BERTH_BACKENDS_DIR", self.dir.path())
            .status();
    }
}

async fn readyz(c: &Client, server: &Server) -> (StatusCode, String) {
    let r = match c.req(Method::GET, "/readyz").send().await {
        Ok(r) => r,
        Err(e) => panic!("GET /readyz: {e:?}\n{}", server.log()),
    };
    (r.status(), r.text().await.unwrap())
}

/// Polls /readyz until it answers 200 (the stores reconnect by themselves).
async fn wait_ready(c: &Client, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = readyz(c, server).await;
        if status == StatusCode::OK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again after the store came back: {body}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn assert_unavailable(r: reqwest::Response, store: &str) {
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    let body = assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(store), "{message}");
}

#[tokio::test]
async fn the_database_going_away_is_503_and_heals() {
    let mut backends = Backends::start();
    let server = backends.registry();
    let c = Client::new(&server);
    let (manifest, digest) = c.push_image("pg/app", "v1", b"before the outage").await;

    backends.down("postgres");
    let (status, body) = readyz(&c, &server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("metadata store unreachable"), "{body}");
    let r = c
        .req(Method::GET, "/v2/pg/app/tags/list")
        .send()
        .await
        .unwrap();
    assert_unavailable(r, "metadata").await;
    // A push during the outage is refused, not half-kept.
    let layer = b"pushed during the outage".to_vec();
    let r = c
        .req(
            Method::POST,
            &format!("/v2/pg/app/blobs/uploads/?digest={}", sha256(&layer)),
        )
        .body(layer.clone())
        .send()
        .await
        .unwrap();
    assert_unavailable(r, "metadata").await;
    let metrics = server.metrics();
    assert!(
        metric(
            &metrics,
            "berth_store_unavailable_total{store=\"metadata\"}"
        ) >= 2.0,
        "{metrics}"
    );

    backends.up();
    wait_ready(&c, &server).await;
    let r = c
        .req(Method::GET, "/v2/pg/app/manifests/v1")
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), manifest);
    let r = c
        .req(
            Method::HEAD,
            &format!("/v2/pg/app/blobs/{}", sha256(&layer)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the refused push left a blob"
    );
    let (_, again) = c.push_image("pg/app", "v2", &layer).await;
    let r = c
        .req(Method::GET, "/v2/pg/app/tags/list")
        .send()
        .await
        .unwrap();
    let tags: serde_json::Value = r.json().await.unwrap();
    assert_eq!(tags["tags"], json!(["v1", "v2"]));
    assert_ne!(again, digest);
}

#[tokio::test]
async fn the_bucket_going_away_is_503_and_an_upload_resumes() {
    let mut backends = Backends::start();
    let server = backends.registry();
    let c = Client::new(&server);
    let (_, _) = c.push_image("s3/app", "v1", b"before the outage").await;
    let stored = c.push_blob("s3/app", b"a blob stored before").await;

    // A chunked upload: the first chunk is acknowledged before the outage.
    let first: Vec<u8> = (0..3 << 20).map(|i| (i % 241) as u8).collect();
    let second: Vec<u8> = (0..2 << 20).map(|i| (i % 239) as u8).collect();
    let r = c
        .req(Method::POST, "/v2/s3/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .req(Method::PATCH, &location)
        .header("content-range", format!("0-{}", first.len() - 1))
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    backends.down("versitygw");
    let (status, body) = readyz(&c, &server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("blob store unreachable"), "{body}");
    let r = c
        .req(Method::GET, &format!("/v2/s3/app/blobs/{stored}"))
        .send()
        .await
        .unwrap();
    assert_unavailable(r, "blobs").await;
    let r = c
        .req(Method::PATCH, &location)
        .header(
            "content-range",
            format!("{}-{}", first.len(), first.len() + second.len() - 1),
        )
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_unavailable(r, "blobs").await;
    let metrics = server.metrics();
    assert!(
        metric(&metrics, "berth_store_unavailable_total{store=\"blobs\"}") >= 2.0,
        "{metrics}"
    );

    backends.up();
    wait_ready(&c, &server).await;
    // The upload is where it was acknowledged: the refused chunk left nothing.
    let r = c.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["range"].to_str().unwrap(),
        format!("0-{}", first.len() - 1)
    );
    let r = c
        .req(Method::PATCH, &location)
        .header(
            "content-range",
            format!("{}-{}", first.len(), first.len() + second.len() - 1),
        )
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let whole = [first, second].concat();
    let r = c
        .req(
            Method::PUT,
            &format!("{location}?digest={}", sha256(&whole)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = c
        .req(Method::GET, &format!("/v2/s3/app/blobs/{}", sha256(&whole)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&whole));
    let r = c
        .req(Method::GET, &format!("/v2/s3/app/blobs/{stored}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), &b"a blob stored before"[..]);
}
