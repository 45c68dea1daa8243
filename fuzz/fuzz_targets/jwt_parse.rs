//! Access-token verification on arbitrary bytes: no panic, and nothing but a token signed
//! by the key set verifies. Half the inputs are spliced into a real token (as its header,
//! payload or signature), so the fuzzer also reaches the claim checks behind the
//! signature check.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico_identity::keys::KeySet;
use portico_identity::tokens::{check_audience, mint, verify, TokenGrant};

const ISSUER: &str = "https://gateway.eu1.portico.localhost";

fn keys() -> &'static (KeySet, String) {
    static KEYS: OnceLock<(KeySet, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let keys = KeySet::ephemeral().expect("a key");
        let grant = TokenGrant {
            subject: "alice".into(),
            tenant: "abc".into(),
            audiences: vec!["api:iot".into()],
            scopes: vec!["portico".into()],
            client_id: None,
            actor: None,
        };
        // Far in the future, so that the real token stays valid for the whole run.
        let token = mint(&keys, ISSUER, &grant, 4_000_000_000, 3600).expect("a token");
        (keys, token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (keys, real) = keys();
    let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
    let candidate = match data.first().map(|b| b % 6) {
        Some(1) => replace_part(real, 0, &text),
        Some(2) => replace_part(real, 1, &text),
        Some(3) => replace_part(real, 2, &text),
        _ => text.to_string(),
    };
    let Ok(token) = verify(keys, ISSUER, &candidate, 0) else {
        return;
    };
    // Whatever verified carries a valid tenant and a subject, and the audience check
    // works on it.
    assert!(portico_store_is_name(&token.tenant), "{token:?}");
    assert!(!token.subject.is_empty());
    let _ = check_audience(&token, &["api:iot"]);
});

fn replace_part(token: &str, index: usize, with: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = with;
    parts.join(".")
}

fn portico_store_is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}
