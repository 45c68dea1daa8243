//! The external-login flow cookie, as a browser (or anyone) sends it back: decoding never
//! panics, and whatever decodes encodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_identity::oidc::PendingLogin;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(pending) = PendingLogin::decode(text) {
        assert_eq!(pending.encode(), text);
    }
});
