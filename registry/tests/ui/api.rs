//! The JSON API and the UI's pages and forms over plain HTTP.

use reqwest::{Method, StatusCode, redirect};
use serde_json::Value;

use crate::common::Server;
use crate::support::{ALICE, BOB, Jar, Pusher, Secured};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn json(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    r.json().await.unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// Each caller sees the repositories they may pull, and no trace of the
/// others: a private repository is as unknown as a missing one.
#[tokio::test]
async fn the_api_shows_only_what_the_caller_may_pull() {
    let reg = Secured::start();
    let alice = Pusher::new(&reg.server, Some(ALICE));
    alice.image("team/app", "v1", "amd64", b"team layer").await;
    alice
        .image("private/secret", "latest", "amd64", b"secret layer")
        .await;
    alice
        .image("public/hello", "latest", "amd64", b"public layer")
        .await;

    let anonymous = Pusher::new(&reg.server, None);
    let body = anonymous
        .req(Method::GET, "/api/v1/repositories")
        .send()
        .await
        .unwrap();
    let text = body.text().await.unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(names(&list), ["public/hello"]);
    assert_eq!(list["total"], 1);
    assert!(!text.contains("secret") && !text.contains("team"), "{text}");

    let bob = Pusher::new(&reg.server, Some(BOB));
    let list = json(
        bob.req(Method::GET, "/api/v1/repositories")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&list), ["public/hello", "team/app"]);
    let list = json(
        alice
            .req(Method::GET, "/api/v1/repositories")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&list), ["private/secret", "public/hello", "team/app"]);
    // The quota of team/* and what it holds.
    let team = &list["repositories"][2];
    assert_eq!(team["quotas"][0]["pattern"], "team/*");
    assert_eq!(team["quotas"][0]["limit_bytes"], 1_073_741_824u64);
    assert_eq!(team["quotas"][0]["used_bytes"], team["bytes"]);
    assert!(team["bytes"].as_u64().unwrap() > 10);
    assert_eq!(team["tags"], 1);
    assert!(team["last_push"].as_i64().unwrap() > 0);

    // Not pullable = not known, with the same answer as a missing repository.
    for path in [
        "/api/v1/repositories/private/secret",
        "/api/v1/repositories/private/secret/-/manifests/latest",
    ] {
        let r = bob.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN", "{body}");
    }
    let missing: Value = bob
        .req(Method::GET, "/api/v1/repositories/private/nothing")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hidden: Value = bob
        .req(Method::GET, "/api/v1/repositories/private/secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        missing.to_string().replace("nothing", "X"),
        hidden.to_string().replace("secret", "X")
    );

    // A token from the token endpoint works as on /v2/; a session cookie does not.
    let token: Value = no_redirects()
        .get(
            reg.server
                .url("/auth/token?service=berth&scope=registry:catalog:*"),
        )
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap();
    let list = json(
        no_redirects()
            .get(reg.server.url("/api/v1/repositories?q=secret"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&list), ["private/secret"]);

    // Wrong credentials: 401 with the token challenge.
    let r = no_redirects()
        .get(reg.server.url("/api/v1/repositories"))
        .basic_auth(ALICE.0, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"http://"),
        "{challenge}"
    );

    // Operations: for logged-in callers only.
    let r = anonymous
        .req(Method::GET, "/api/v1/operations")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ops = json(
        bob.req(Method::GET, "/api/v1/operations")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ops["repositories"], 3);
    assert_eq!(ops["tags"], 3);
    assert!(ops["stored_bytes"].as_u64().unwrap() > 0);

    // The UI's pages say the same: bob's list has no trace of private/.
    let page = bob
        .req(Method::GET, "/ui/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("team/app") && !page.contains("private"),
        "{page}"
    );
    let r = bob
        .req(Method::GET, "/ui/r/private/secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.text().await.unwrap().contains("latest"));

    // Metrics label UI routes by template: no repository names.
    let metrics = reg.server.metrics();
    assert!(metrics.contains("route=\"/ui/r/{name}\""), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/repositories/{name}\""));
    assert!(!metrics.contains("private/secret"));
}

/// Tags, an index's platforms and sizes, manifests and their referrers as
/// a tree, search and paging, on an open registry.
#[tokio::test]
async fn the_api_describes_tags_manifests_and_referrers() {
    let server = Server::start();
    let p = Pusher::new(&server, None);
    let index = p.index("team/app", "multi").await;
    let signature = p
        .referrer(
            "team/app",
            &index,
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            b"sig",
        )
        .await;
    let sbom = p
        .referrer(
            "team/app",
            &index,
            "application/spdx+json",
            b"{\"spdxVersion\":\"SPDX-2.3\"}",
        )
        .await;
    let sbom_signature = p
        .referrer(
            "team/app",
            &sbom,
            "application/vnd.cncf.notary.signature",
            b"notation",
        )
        .await;
    for i in 0..3 {
        p.image(
            &format!("other/repo{i}"),
            "latest",
            "amd64",
            format!("other {i}").as_bytes(),
        )
        .await;
    }

    let view = json(
        p.req(Method::GET, "/api/v1/repositories/team/app")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(view["name"], "team/app");
    assert_eq!(view["total_tags"], 3);
    let tags = view["tags"].as_array().unwrap();
    assert_eq!(tags[0]["name"], "multi", "newest first: {view}");
    assert_eq!(tags[0]["digest"], index);
    assert_eq!(tags[0]["kind"], "index");
    assert_eq!(
        tags[0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert_eq!(
        tags[0]["referrers"],
        serde_json::json!(["signature", "sbom"]),
        "direct referrers only, each kind once: {view}"
    );
    let amd = tags.iter().find(|t| t["name"] == "multi-amd64").unwrap();
    let arm = tags.iter().find(|t| t["name"] == "multi-arm64").unwrap();
    let (amd, arm) = (amd["size"].as_u64().unwrap(), arm["size"].as_u64().unwrap());
    assert!(
        tags[0]["size"].as_u64().unwrap() > amd + arm,
        "the index counts both images: {view}"
    );
    let page2 = json(
        p.req(
            Method::GET,
            "/api/v1/repositories/team/app?per_page=2&page=2",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(page2["tags"].as_array().unwrap().len(), 1);
    assert_eq!(page2["page"], 2);
    let r = p
        .req(Method::GET, "/api/v1/repositories/team/app?page=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let m = json(
        p.req(
            Method::GET,
            "/api/v1/repositories/team/app/-/manifests/multi",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(m["digest"], index);
    assert_eq!(m["is_index"], true);
    assert_eq!(m["tags"], serde_json::json!(["multi"]));
    assert_eq!(m["manifests"][1]["platform"]["architecture"], "arm64");
    let referrers = m["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 2, "{m}");
    let sig = referrers.iter().find(|r| r["digest"] == signature).unwrap();
    assert_eq!(sig["kind"], "signature");
    assert_eq!(
        sig["artifact_type"],
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    let sb = referrers.iter().find(|r| r["digest"] == sbom).unwrap();
    assert_eq!(sb["kind"], "sbom");
    assert_eq!(sb["referrers"][0]["digest"], sbom_signature, "nested: {m}");
    assert_eq!(sb["referrers"][0]["kind"], "signature");
    assert!(m["content"].as_str().unwrap().contains("\"manifests\""));

    let tree = json(
        p.req(
            Method::GET,
            &format!("/api/v1/repositories/team/app/-/referrers/{index}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(tree["referrers"], m["referrers"]);
    assert_eq!(tree["truncated"], false);

    let by_digest = json(
        p.req(
            Method::GET,
            &format!("/api/v1/repositories/team/app/-/manifests/{sbom}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(by_digest["kind"], "sbom");
    assert_eq!(by_digest["subject"]["digest"], index);
    assert_eq!(by_digest["tags"], serde_json::json!([]));
    let r = p
        .req(
            Method::GET,
            "/api/v1/repositories/team/app/-/manifests/nope",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let list = json(
        p.req(Method::GET, "/api/v1/repositories?q=REPO&per_page=2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 3);
    assert_eq!(names(&list), ["other/repo0", "other/repo1"]);
    let list = json(
        p.req(Method::GET, "/api/v1/repositories?q=repo&per_page=2&page=2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&list), ["other/repo2"]);

    // Without access control the UI says so, and offers deletes.
    let page = p
        .req(Method::GET, "/ui/r/team/app")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("open registry") && page.contains(">Delete</button>"),
        "{page}"
    );
    let r = no_redirects().get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/");
    let css = no_redirects()
        .get(server.url("/ui/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

/// Logging in, the CSRF and origin checks of every form, delete rights,
/// and sessions that are no API tokens.
#[tokio::test]
async fn forms_need_our_origin_a_csrf_token_and_the_right() {
    let reg = Secured::start();
    let alice = Pusher::new(&reg.server, Some(ALICE));
    alice.image("team/app", "old", "amd64", b"old layer").await;
    alice.image("team/app", "v1", "amd64", b"v1 layer").await;
    let http = no_redirects();
    let base = reg.server.base.clone();

    // A page gives the CSRF cookie; the login form carries it.
    let mut jar = Jar::default();
    let r = http.get(format!("{base}/ui/login")).send().await.unwrap();
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    jar.take(&r);
    let csrf = jar.get("berth_csrf").unwrap().to_string();
    let cookie_line = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );

    let post = |path: &str, jar: &Jar, form: &[(&str, &str)], origin: &str| {
        http.post(format!("{base}{path}"))
            .header("cookie", jar.header())
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
    };
    // Wrong password: the form again, with the error.
    let r = post(
        "/ui/login",
        &jar,
        &[
            ("csrf", &csrf),
            ("username", "bob"),
            ("password", "nope"),
            ("next", "/ui/"),
        ],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("invalid username or password")
    );
    // No CSRF token, or another site's origin: refused before the password is looked at.
    let r = post(
        "/ui/login",
        &jar,
        &[("username", BOB.0), ("password", BOB.1)],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(
        "/ui/login",
        &jar,
        &[("csrf", &csrf), ("username", BOB.0), ("password", BOB.1)],
        "https://evil.example",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // bob logs in.
    let r = post(
        "/ui/login",
        &jar,
        &[
            ("csrf", &csrf),
            ("username", BOB.0),
            ("password", BOB.1),
            ("next", "/ui/r/team/app"),
        ],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/r/team/app");
    let mut bob = jar.clone();
    bob.take(&r);
    let session = bob.get("berth_session").unwrap().to_string();

    // bob may pull but not delete: no button, and the post is refused.
    let page = http
        .get(format!("{base}/ui/r/team/app"))
        .header("cookie", bob.header())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"current-user\">bob<") && !page.contains(">Delete</button>"),
        "{page}"
    );
    let r = post(
        "/ui/r/team/app/-/tags/old/delete",
        &bob,
        &[("csrf", &csrf)],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // The session cookie is no token for the registry API.
    let r = http
        .get(format!("{base}/v2/team/app/tags/list"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A bearer token is held to its scopes, as on /v2/: alice's token for
    // the catalog lists team/app but reads none of it, and her token for
    // pulling it reads it but deletes nothing, CSRF pair or not.
    let token = |scope: &'static str| {
        let http = http.clone();
        let url = reg
            .server
            .url(&format!("/auth/token?service=berth&scope={scope}"));
        async move {
            let t: Value = http
                .get(url)
                .basic_auth(ALICE.0, Some(ALICE.1))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            t["token"].as_str().unwrap().to_string()
        }
    };
    let catalog = token("registry:catalog:*").await;
    let pull = token("repository:team/app:pull").await;
    let list: Value = http
        .get(format!("{base}/api/v1/repositories"))
        .bearer_auth(&catalog)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["repositories"][0]["name"], "team/app", "{list}");
    for (token, status) in [(&catalog, 404), (&pull, 200)] {
        let r = http
            .get(format!("{base}/api/v1/repositories/team/app"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }
    let r = http
        .post(format!("{base}/ui/r/team/app/-/tags/old/delete"))
        .bearer_auth(&pull)
        .header("cookie", format!("berth_csrf={csrf}"))
        .header("origin", &base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // alice logs in (a new session) and deletes `old`; without the token, nothing happens.
    let mut alice_jar = Jar::default();
    alice_jar.0.push(("berth_csrf".into(), csrf.clone()));
    let r = post(
        "/ui/login",
        &alice_jar,
        &[
            ("csrf", &csrf),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    alice_jar.take(&r);
    let r = post(
        "/ui/r/team/app/-/tags/old/delete",
        &alice_jar,
        &[("csrf", "0123456789abcdef0123456789abcdef")],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(
        "/ui/r/team/app/-/tags/old/delete",
        &alice_jar,
        &[("csrf", &csrf)],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/ui/r/team/app?deleted=old");
    let tags: Value = alice
        .req(Method::GET, "/v2/team/app/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    // An immutable tag (v*) stays, and the page says why.
    let r = post(
        "/ui/r/team/app/-/tags/v1/delete",
        &alice_jar,
        &[("csrf", &csrf)],
        &base,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("immutable"));

    // Operations need a login; logging out forgets the session.
    let r = http
        .get(format!("{base}/ui/operations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http
        .get(format!("{base}/ui/operations"))
        .header("cookie", alice_jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/ui/logout", &alice_jar, &[("csrf", &csrf)], &base)
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    alice_jar.take(&r);
    assert_eq!(alice_jar.get("berth_session"), None);
}
