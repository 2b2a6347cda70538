//! The token verifier: arbitrary text never panics it and is never taken
//! for a valid token (only our own key signs; the fuzzer does not have it).
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use berth_registry::auth::TokenService;
use libfuzzer_sys::fuzz_target;

static SERVICE: LazyLock<(TokenService, tempfile::TempDir)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = TokenService::new(
        &dir.path().join("key.pem"),
        "berth",
        "berth",
        Duration::from_secs(300),
    )
    .expect("token service");
    (service, dir)
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert!(SERVICE.0.verify(&text).is_err(), "{text:?} verified");
});
