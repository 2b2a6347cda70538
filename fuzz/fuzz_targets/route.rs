//! The path after `/v2/`: decoding and routing never panic, and the route
//! template (used for metrics labels) agrees with the parsed route.
#![no_main]

use berth_registry::http::route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = format!("/v2/{}", String::from_utf8_lossy(data));
    let rest = route::rest_of(&path);
    let endpoint = route::endpoint(&rest);
    match route::parse(&rest) {
        Ok(parsed) => assert_eq!(Some(parsed.endpoint()), endpoint, "{rest:?}"),
        Err(e) => assert!(!e.message.is_empty()),
    }
});
