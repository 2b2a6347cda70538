//! The policy file parser: any text parses or names the bad field, never a
//! panic; a policy that loads answers every question about access.
#![no_main]

use std::path::Path;

use berth_registry::auth::{Action, Identity, Policy};
use berth_registry::settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text, Path::new("policy.yaml")) {
        Ok(policy) => {
            for who in [
                Identity::Anonymous,
                Identity::User {
                    name: "alice".into(),
                },
                Identity::Robot {
                    name: "robot$ci".into(),
                },
            ] {
                let allowed = policy.allowed(&who, "team/app");
                assert_eq!(
                    allowed.contains(&Action::Push),
                    policy.permits(&who, "team/app", Action::Push)
                );
            }
            // The per-repository settings the policy file carries resolve
            // for any name (quotas, immutable tags, retention).
            let settings = Settings::for_repository(policy.repositories(), "team/app");
            let _ = settings.is_immutable("v1");
        }
        Err(e) => assert!(e.to_string().contains("policy.yaml")),
    }
});
