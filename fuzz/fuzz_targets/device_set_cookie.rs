//! The filter on a device's `Set-Cookie` headers in clientless access: arbitrary bytes,
//! split at NUL into header values. No panic, and what passes is a subsequence of what came
//! in, with no `Domain` attribute (in any case and spacing) and no cookie named like one of
//! Portico's.
#![no_main]

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let values: Vec<HeaderValue> = data
        .split(|b| *b == 0)
        .filter_map(|part| HeaderValue::from_bytes(part).ok())
        .collect();
    let mut headers = HeaderMap::new();
    for value in &values {
        headers.append(SET_COOKIE, value.clone());
    }
    portico_gateway::harden_device_cookies(&mut headers);
    let kept: Vec<&HeaderValue> = headers.get_all(SET_COOKIE).iter().collect();
    let mut rest = values.iter();
    for value in &kept {
        assert!(
            rest.any(|v| v == *value),
            "kept something that did not come in, or reordered"
        );
        let text = std::str::from_utf8(value.as_bytes()).expect("only UTF-8 text passes");
        let mut parts = text.split(';');
        let name = parts
            .next()
            .and_then(|p| p.split_once('='))
            .map(|(n, _)| n.trim())
            .unwrap();
        assert!(!name.is_empty());
        for own in ["SESSION", "REGION-SESSION", "XSRF-TOKEN"] {
            assert!(!name.eq_ignore_ascii_case(own));
        }
        for attribute in parts {
            let key = attribute.split('=').next().unwrap_or_default().trim();
            assert!(!key.eq_ignore_ascii_case("domain"), "{text}");
        }
    }
});
