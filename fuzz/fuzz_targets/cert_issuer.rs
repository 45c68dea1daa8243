//! The endpoint agent's reading of a certificate's issuer (for the message that reports a
//! TLS-inspecting proxy), on arbitrary bytes: the certificate comes from whoever answered the
//! TLS handshake. No panic; a summary, when one is produced, is short and printable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_endpoint::cert_issuer::issuer_summary;

fuzz_target!(|data: &[u8]| {
    if let Some(summary) = issuer_summary(data) {
        assert!(!summary.is_empty());
        assert!(summary.chars().count() <= 200);
        assert!(!summary.chars().any(char::is_control));
    }
});
