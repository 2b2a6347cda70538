//! `GET /v2/`, health and readiness.

use super::*;

#[tokio::test]
async fn base_endpoint_and_health() {
    let api = Api::start();
    let r = api.send(Method::GET, "/v2/").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(
        api.send(Method::GET, "/healthz").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.send(Method::GET, "/readyz").await.status(),
        StatusCode::OK
    );
}
