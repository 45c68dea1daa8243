//! The endpoint agent's reading of an HTTP proxy's answer to `CONNECT`, on arbitrary bytes:
//! whatever sits where the proxy should be writes them. No panic; a status line, when one is
//! produced, is a single printable line that names the parsed code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_endpoint::proxy::{parse_response_head, MAX_RESPONSE_HEAD};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_RESPONSE_HEAD)];
    if let Ok(status) = parse_response_head(data) {
        assert!(!status.status_line.chars().any(char::is_control));
        assert!(status.status_line.contains(&status.code.to_string()));
        assert!(status.status_line.len() < 1024);
    }
});
