//! The endpoint agent's reading of the token endpoint's answer, on an arbitrary status and
//! body: whatever answered the request wrote them. No panic; an accepted token can be sent in
//! a header, and only a 2xx answer yields one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_endpoint::token::{parse_token_answer, MAX_ANSWER};

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status) % 600;
    let body = &body[..body.len().min(MAX_ANSWER)];
    match parse_token_answer(status, body) {
        Ok(token) => {
            assert!((200..300).contains(&status));
            assert!(!token.value.is_empty());
            assert!(token.value.bytes().all(|b| b.is_ascii_graphic()));
        }
        Err(e) => assert!(!e.to_string().chars().any(char::is_control)),
    }
});
