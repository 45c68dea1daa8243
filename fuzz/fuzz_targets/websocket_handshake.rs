//! The WebSocket handshake checks on arbitrary request and response headers: no panic; an
//! accepted request has a 16-byte key and named subprotocols; a backend answer is accepted
//! only with the right `Sec-WebSocket-Accept` and an offered subprotocol; and a correct
//! answer to an accepted request is always accepted.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};
use libfuzzer_sys::fuzz_target;
use portico_gateway::websocket::handshake::{accept_key, check_request, check_response};

/// Header lines `name: value`, one a line; lines that are no valid header are skipped.
fn headers(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let method = if flags & 1 == 0 {
        Method::GET
    } else {
        Method::POST
    };
    let version = if flags & 2 == 0 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    // Request and response headers are separated by a NUL byte.
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let request = headers(&rest[..split]);
    let response = headers(rest.get(split + 1..).unwrap_or_default());

    let Ok(client) = check_request(&method, version, &request) else {
        return;
    };
    assert!(method == Method::GET && version == Version::HTTP_11);
    assert_eq!(
        request
            .get("sec-websocket-version")
            .unwrap()
            .as_bytes()
            .trim_ascii(),
        b"13"
    );
    assert_eq!(client.key.len(), 24);
    assert!(client
        .protocols
        .iter()
        .all(|p| !p.is_empty() && !p.contains([',', ' '])));

    if check_response(&client, &response).is_ok() {
        let accept = response.get("sec-websocket-accept").unwrap();
        assert_eq!(
            accept.as_bytes().trim_ascii(),
            accept_key(&client.key).as_bytes()
        );
        if let Some(chosen) = response.get("sec-websocket-protocol") {
            let chosen = chosen.to_str().unwrap().trim();
            assert!(client.protocols.iter().any(|p| p == chosen));
        }
    }

    let mut correct = HeaderMap::new();
    correct.insert("upgrade", HeaderValue::from_static("websocket"));
    correct.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&accept_key(&client.key)).unwrap(),
    );
    if let Some(first) = client.protocols.first() {
        correct.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(first).unwrap(),
        );
    }
    assert!(check_response(&client, &correct).is_ok());
});
