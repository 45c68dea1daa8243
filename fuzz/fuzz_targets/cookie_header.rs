//! The `Cookie` header parser: arbitrary bytes as one header value. No panic, and a few
//! laws: every pair's name is non-empty and trimmed, the value has no `;`, and removing
//! cookies keeps every other pair and leaves none of the removed.
#![no_main]

use http::header::{HeaderMap, HeaderValue, COOKIE};
use libfuzzer_sys::fuzz_target;
use portico_gateway::auth::cookies;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(&[u8], &[u8])> = cookies::pairs(data).collect();
    for (name, value) in &pairs {
        assert!(!name.is_empty());
        assert_eq!(name.trim_ascii(), *name);
        assert!(!value.contains(&b';'));
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, value);
    let removed = ["SESSION", "REGION-SESSION", "XSRF-TOKEN"];
    let kept_before: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .iter()
        .filter(|(n, _)| !removed.iter().any(|r| *n == r.as_bytes()))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    let _ = cookies::first(&headers, "SESSION");
    cookies::remove(&mut headers, &removed);
    for name in removed {
        assert_eq!(cookies::first(&headers, name), None);
    }
    let kept_after: Vec<(Vec<u8>, Vec<u8>)> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| cookies::pairs(v.as_bytes()))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(kept_before, kept_after);
});
