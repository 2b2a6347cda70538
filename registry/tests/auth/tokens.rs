//! The token flow: grants, expiry, mounts, and real clients logging in.

use super::*;

#[tokio::test]
async fn token_flow_grants_the_intersection_and_is_checked_on_every_request() {
    let s = Secured::start(&[]);
    let robot = Some((ROBOT, ROBOT_SECRET));
    let r = s
        .token(
            &[
                "repository:ci/app:pull,push",
                "repository:prod/app:pull,push,delete",
            ],
            robot,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap().to_string();
    let bearer = |method: Method, path: &str| {
        s.http
            .request(method, s.server.url(path))
            .bearer_auth(&token)
    };

    let r = bearer(
        Method::POST,
        &format!("/v2/ci/app/blobs/uploads/?digest={}", sha256(b"t")),
    )
    .body("t")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // The token was cut down to pull on prod/app: push is refused.
    let r = bearer(
        Method::POST,
        &format!("/v2/prod/app/blobs/uploads/?digest={}", sha256(b"t")),
    )
    .body("t")
    .send()
    .await
    .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "DENIED").await;
    // A token for ci/app used on ci/other: ask for a new token.
    let r = bearer(Method::GET, "/v2/ci/other/tags/list")
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(
        challenge.contains("scope=\"repository:ci/other:pull\"")
            && challenge.contains("insufficient_scope"),
        "{challenge}"
    );

    // Tampered: flip a character of the signature.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&tampered)
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // Anonymous tokens carry only what anonymous may do.
    let r = s
        .token(
            &["repository:public/x:pull,push", "repository:ci/app:pull"],
            None,
        )
        .await;
    let anon = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/public/x/tags/list"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&anon)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Wrong credentials at the token endpoint: 401 with a Basic challenge.
    let r = s
        .token(&["repository:ci/app:pull"], Some((ROBOT, "nope")))
        .await;
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(challenge.starts_with("Basic"), "{challenge}");

    // containerd's OAuth2 POST form.
    let r = s
        .http
        .post(s.server.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "password"),
                    ("username", ROBOT),
                    ("password", ROBOT_SECRET),
                    ("service", "berth"),
                    ("scope", "repository:ci/app:pull repository:team/app:pull"),
                    ("client_id", "containerd"),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// An automatic mount (`?mount=` without `from`) only links a blob from a
/// repository the caller may pull; otherwise it is a new upload, answered
/// exactly as for a digest stored nowhere.
#[tokio::test]
async fn automatic_mount_never_leaks_a_blob_the_caller_cannot_pull() {
    let s = Secured::start(&[]);
    let robot = Some((ROBOT, ROBOT_SECRET));
    let alice = Some(("alice", "alice-pw"));
    // A layer only the robot's repository holds (alice may not pull ci/*).
    let secret = b"layer that lives only in ci/secret";
    assert_eq!(
        s.push_blob("ci/secret", secret, robot).await.status(),
        StatusCode::CREATED
    );
    // A layer alice may read (public/*).
    let public = b"layer in a public repository";
    assert_eq!(
        s.push_blob("public/base", public, alice).await.status(),
        StatusCode::CREATED
    );
    let mount = |digest: String| {
        s.req(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={digest}"),
            alice,
        )
        .send()
    };

    let leaked = mount(sha256(secret)).await.unwrap();
    let nowhere = mount(sha256(b"stored nowhere")).await.unwrap();
    assert_eq!(leaked.status(), StatusCode::ACCEPTED);
    assert_eq!(nowhere.status(), StatusCode::ACCEPTED);
    let shape = |r: &Response| {
        let mut names: Vec<String> = r
            .headers()
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k != "date" && k != "x-request-id")
            .collect();
        names.sort();
        names
    };
    assert_eq!(shape(&leaked), shape(&nowhere));
    let r = s
        .req(
            Method::GET,
            &format!("/v2/team/app/blobs/{}", sha256(secret)),
            alice,
        )
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;

    // From a repository alice may pull, the automatic mount links it.
    let r = mount(sha256(public)).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .req(
            Method::GET,
            &format!("/v2/team/app/blobs/{}", sha256(public)),
            alice,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), &public[..]);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let s = Secured::start(&["--token-expiry-seconds", "1"]);
    let r = s
        .token(&["repository:ci/app:pull"], Some((ROBOT, ROBOT_SECRET)))
        .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND); // valid token, unknown repository
    // Past expiry plus the 5 s leeway.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let r = s
        .http
        .get(s.server.url("/v2/ci/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let challenge = assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        .await
        .unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn skopeo_and_oci_client_log_in() {
    let s = Secured::start(&[]);
    s.push_image("public/base", "v1", ("alice", "alice-pw"))
        .await;
    let addr = &s.server.addr;
    let src = format!("docker://{addr}/public/base:v1");
    let creds = format!("{ROBOT}:{ROBOT_SECRET}");

    // Anonymous pull of a public image, robot push to ci/* through the token flow.
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src,
        &format!("docker://{addr}/ci/app:v1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not to prod/*.
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src,
        &format!("docker://{addr}/prod/app:v1"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("denied") || err.contains("unauthorized"),
        "{err}"
    );
    // Wrong secret.
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{ROBOT}:wrong"),
        &format!("docker://{addr}/ci/app:v1"),
    ]);
    assert!(!out.status.success());
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{addr}/ci/app:v1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // oci-client with basic credentials, through the same token flow.
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::secrets::RegistryAuth;
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let image: oci_client::Reference = format!("{addr}/team/tool:v1").parse().unwrap();
    let alice = RegistryAuth::Basic("alice".into(), "alice-pw".into());
    let layers = vec![ImageLayer::oci_v1(b"tool".to_vec(), None)];
    client
        .push(
            &image,
            &layers,
            Config::oci_v1(b"{}".to_vec(), None),
            &alice,
            None,
        )
        .await
        .unwrap();
    let bob = RegistryAuth::Basic("bob".into(), "bob-pw".into());
    let other = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    assert!(other.pull_manifest(&image, &bob).await.is_err());
    let fresh = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let (_, digest) = fresh.pull_manifest(&image, &alice).await.unwrap();
    assert!(digest.starts_with("sha256:"));
}
