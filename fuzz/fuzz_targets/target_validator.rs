//! `validate_target` on arbitrary targets: no panic, every error has a message, and
//! whatever passes is something the gateway can forward as received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::routing::validate_target;

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    match validate_target(target) {
        Err(error) => assert!(!error.to_string().is_empty()),
        Ok(()) => {
            assert!(target == "*" || target.starts_with('/'));
            assert!(target.is_ascii() && !target.contains('#'));
            if target != "*" {
                assert!(
                    http::uri::PathAndQuery::try_from(target).is_ok(),
                    "{target:?}"
                );
            }
        }
    }
});
