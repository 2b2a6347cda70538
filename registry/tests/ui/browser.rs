//! The web UI in a real browser: Debian's chromium, headless, driven by
//! its chromedriver over WebDriver (fantoccini). Real content is pushed
//! first — an index of two platforms, a cosign signature (the real cosign
//! CLI, as an OCI 1.1 referrer), an SBOM attached by the real oras CLI, a
//! SIF image pushed by oras as Apptainer does, a private repository — and
//! then the pages are looked at as bob (who may pull team/ and hpc/) and
//! alice (who may also delete, and pull private/). Each page is saved as a
//! full-page screenshot under `target/ui-screenshots/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::tools::{run_with, tool};
use crate::support::{ALICE, BOB, Pusher, Secured};

/// chromedriver on a port of its own, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    fn start() -> Driver {
        let bin = tool("chromedriver");
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                _profile: tempfile::tempdir().unwrap(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return driver;
                }
                if let Ok(Some(_)) = driver.child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "chromedriver did not start (is Debian's chromium-driver installed? tests/tools/install.sh)"
        );
    }

    async fn browser(&self) -> Client {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("Debian's chromium (tests/tools/install.sh installs it)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--force-device-scale-factor=1", "--hide-scrollbars",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a chromium session")
    }
}

/// Where screenshots go: `<target dir>/ui-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the whole page (the window grown to its height).
async fn shot(c: &Client, name: &str) {
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(900)
        .clamp(600, 4000);
    c.set_window_size(1280, height as u32 + 90).await.unwrap();
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is no PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    c.set_window_size(1280, 900).await.unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

async fn log_in(c: &Client, base: &str, (user, password): (&str, &str)) {
    c.goto(&format!("{base}/ui/login")).await.unwrap();
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Id("login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("current-user"))
        .await
        .unwrap();
    assert_eq!(text(c, "#current-user").await, user);
}

async fn log_out(c: &Client) {
    c.find(Locator::Css("form[action='/ui/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("a[href^='/ui/login']"))
        .await
        .unwrap();
}

/// Pushes what the pages show; returns (index digest, signature digest).
async fn push_content(reg: &Secured) -> (String, String) {
    let alice = Pusher::new(&reg.server, Some(ALICE));
    let index = alice.index("team/app", "multi").await;
    alice
        .image("team/app", "old", "amd64", b"an old build")
        .await;
    alice
        .image("private/secret", "latest", "amd64", b"nobody else's")
        .await;

    // cosign signs the index: a sigstore bundle, stored as an OCI 1.1 referrer.
    let keys = reg.work("cosign");
    let docker = reg.docker_config();
    let docker = docker.to_str().unwrap();
    let env = [
        ("DOCKER_CONFIG", docker),
        ("COSIGN_PASSWORD", "ui-test-pw"),
        ("COSIGN_YES", "true"),
    ];
    run_with(&keys, "cosign", ["generate-key-pair"], &env);
    let by_digest = format!("{}/team/app@{index}", reg.server.addr);
    run_with(
        &keys,
        "cosign",
        [
            "sign",
            "--key",
            "cosign.key",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--new-bundle-format=true",
            "--allow-insecure-registry",
            "--allow-http-registry",
            &by_digest,
        ],
        &env,
    );
    // An SBOM attached with oras.
    let work = reg.work("oras");
    std::fs::write(
        work.join("sbom.spdx.json"),
        br#"{"spdxVersion":"SPDX-2.3","name":"app"}"#,
    )
    .unwrap();
    run_with(
        &work,
        "oras",
        [
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/spdx+json",
            &by_digest,
            "sbom.spdx.json:application/spdx+json",
        ],
        &[("DOCKER_CONFIG", docker)],
    );
    // A SIF image, as `apptainer push oras://` sends one: a real SIF
    // header and descriptor table, signed by Apptainer (the fuzz corpus').
    let sif = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sif/signed-apptainer"),
    )
    .unwrap();
    std::fs::write(work.join("tools.sif"), &sif).unwrap();
    std::fs::write(work.join("config.json"), b"{}").unwrap();
    run_with(
        &work,
        "oras",
        [
            "push",
            "--plain-http",
            "--config",
            "config.json:application/vnd.sylabs.sif.config.v1+json",
            &format!("{}/hpc/tools:1.0", reg.server.addr),
            "tools.sif:application/vnd.sylabs.sif.layer.v1.sif",
        ],
        &[("DOCKER_CONFIG", docker)],
    );

    let referrers: Value = alice
        .req(Method::GET, &format!("/v2/team/app/referrers/{index}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signature = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json")
        .unwrap_or_else(|| panic!("cosign's bundle is a referrer: {referrers}"))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (index, signature)
}

#[tokio::test]
async fn the_pages_in_a_real_browser() {
    let started = Instant::now();
    let reg = Secured::start();
    let (index, signature) = push_content(&reg).await;
    let base = reg.server.base.clone();
    let driver = Driver::start();
    let c = driver.browser().await;

    // Anonymous: nothing of team/, hpc/ or private/, and a way to log in.
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/");
    assert!(
        c.source().await.unwrap().contains("Nothing to show yet")
            || texts(&c, "#repositories td.name").await.is_empty()
    );
    assert!(!c.source().await.unwrap().contains("private/secret"));
    shot(&c, "01-anonymous").await;

    // bob may pull team/ and hpc/: he sees them, never private/secret.
    log_in(&c, &base, BOB).await;
    let names = texts(&c, "#repositories td.name").await;
    assert_eq!(names, ["hpc/tools", "team/app"]);
    assert!(!c.source().await.unwrap().contains("private"));
    c.goto(&format!("{base}/ui/r/private/secret"))
        .await
        .unwrap();
    assert_eq!(text(&c, "h1").await, "Not found");
    assert!(!c.source().await.unwrap().contains("nobody else"));
    shot(&c, "02-bob-private-not-found").await;
    c.goto(&format!("{base}/ui/r/team/app")).await.unwrap();
    assert!(
        c.find_all(Locator::Css("form.delete"))
            .await
            .unwrap()
            .is_empty(),
        "bob may not delete"
    );
    log_out(&c).await;

    // alice sees all three, searches, and opens team/app.
    log_in(&c, &base, ALICE).await;
    assert_eq!(
        texts(&c, "#repositories td.name").await,
        ["hpc/tools", "private/secret", "team/app"]
    );
    assert_eq!(text(&c, "#repository-count").await, "3 repositories");
    shot(&c, "03-repositories").await;
    let search = c.find(Locator::Id("search")).await.unwrap();
    search.send_keys("app").await.unwrap();
    c.find(Locator::Css("form.search button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_url(&url::Url::parse(&format!("{base}/ui/?q=app")).unwrap())
        .await
        .unwrap();
    assert_eq!(texts(&c, "#repositories td.name").await, ["team/app"]);
    c.find(Locator::LinkText("team/app"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("tags")).await.unwrap();

    // The tag page: the index's digest and platforms.
    let row = c.find(Locator::Css("tr[data-tag='multi']")).await.unwrap();
    let shown = row.find(Locator::Css("code.digest")).await.unwrap();
    assert_eq!(
        shown.attr("title").await.unwrap().as_deref(),
        Some(index.as_str())
    );
    let platforms: Vec<String> = {
        let mut v = Vec::new();
        for p in row.find_all(Locator::Css(".platform")).await.unwrap() {
            v.push(p.text().await.unwrap());
        }
        v
    };
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    let marks: Vec<String> = {
        let mut v = Vec::new();
        for m in row.find_all(Locator::Css(".referred")).await.unwrap() {
            v.push(m.text().await.unwrap());
        }
        v
    };
    assert!(
        marks.contains(&"+ signature".to_string()) && marks.contains(&"+ SBOM".to_string()),
        "{marks:?}"
    );
    assert!(
        text(&c, ".commands")
            .await
            .contains(&format!("{}/team/app:", reg.server.addr))
    );
    shot(&c, "04-repository").await;

    // The manifest: digest, children, and the referrers tree with cosign's
    // signature and the SBOM.
    row.find(Locator::LinkText("multi"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("referrers"))
        .await
        .unwrap();
    assert!(text(&c, "#manifest-digest").await.contains(&index));
    assert_eq!(
        texts(&c, "#platforms .platform").await,
        ["linux/amd64", "linux/arm64/v8"]
    );
    assert_eq!(
        c.find_all(Locator::Css("#children tbody tr"))
            .await
            .unwrap()
            .len(),
        2
    );
    let sig = c
        .find(Locator::Css(&format!(
            "li.referrer[data-kind='signature'] code.digest[title='{signature}']"
        )))
        .await
        .unwrap_or_else(|_| panic!("the signature {signature} is in the referrers tree"));
    assert!(sig.is_displayed().await.unwrap());
    let tree = text(&c, "#referrers").await;
    assert!(
        tree.contains("application/vnd.dev.sigstore.bundle.v0.3+json"),
        "{tree}"
    );
    assert!(tree.contains("application/spdx+json"), "{tree}");
    shot(&c, "05-manifest").await;

    // The SIF image: its kind and the apptainer command.
    c.goto(&format!("{base}/ui/r/hpc/tools/-/manifests/1.0"))
        .await
        .unwrap();
    assert_eq!(
        text(&c, ".page-head .badge").await.to_lowercase(),
        "sif image"
    );
    assert!(text(&c, ".commands").await.contains(&format!(
        "apptainer pull oras://{}/hpc/tools:1.0",
        reg.server.addr
    )));
    assert!(text(&c, "#layers").await.contains("tools.sif"));
    // What the server read from its header when it was pushed.
    let described = text(&c, "#sif").await;
    assert!(
        described.contains("51764877-74fc-4ee3-980a-ca47baacff1c") && described.contains("amd64"),
        "{described}"
    );
    shot(&c, "06-sif").await;

    // alice deletes team/app:old: confirmed, gone from the page and the API.
    c.goto(&format!("{base}/ui/r/team/app")).await.unwrap();
    let old = c
        .find(Locator::Css("tr[data-tag='old'] form.delete button"))
        .await
        .unwrap();
    old.click().await.unwrap();
    let question = c.get_alert_text().await.unwrap();
    assert!(
        question.contains("Delete tag old of team/app"),
        "{question}"
    );
    c.accept_alert().await.unwrap();
    c.wait().for_element(Locator::Id("notice")).await.unwrap();
    assert_eq!(text(&c, "#notice").await, "Tag old was deleted.");
    assert!(
        c.find_all(Locator::Css("tr[data-tag='old']"))
            .await
            .unwrap()
            .is_empty()
    );
    shot(&c, "07-deleted").await;
    let tags: Value = Pusher::new(&reg.server, Some(ALICE))
        .req(Method::GET, "/v2/team/app/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !tags["tags"].as_array().unwrap().iter().any(|t| t == "old"),
        "{tags}"
    );

    // Operations, after a gc run (berth gc on the same stores, as a cron
    // job would run it): the run is listed with what it deleted.
    let gc = reg.server.stores().berth(&["gc", "--grace-seconds", "0"]);
    c.find(Locator::LinkText("Operations"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("stats")).await.unwrap();
    assert_eq!(text(&c, "#stat-repositories .value").await, "3");
    let runs = texts(&c, "#runs tbody tr").await;
    assert_eq!(runs.len(), 1, "{runs:?}\n{gc}");
    // The untagged manifest of `old`, its link and its layer ("an old build").
    assert!(
        runs[0].starts_with("gc ") && runs[0].ends_with(" ok 0 1 1 12 B"),
        "{runs:?}\n{gc}"
    );
    shot(&c, "08-operations").await;

    c.close().await.unwrap();
    eprintln!(
        "ui browser test: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshot_dir().canonicalize().unwrap().display()
    );
}
