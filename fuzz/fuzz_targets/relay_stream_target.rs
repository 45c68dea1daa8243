//! The stream target an endpoint opens on the relay (`session:{id}/listener:{n}`): any
//! text either fails with a typed error or parses to a target that prints back as the
//! same text (one spelling per target, so logs and checks agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_relay::live::ListenerTarget;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(target) = ListenerTarget::parse(text) {
        assert_eq!(target.to_string(), text);
    }
});
