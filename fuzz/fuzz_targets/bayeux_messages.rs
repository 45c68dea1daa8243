//! Bayeux request bodies: parsing and the session-free checks of each message. No panic,
//! and every message is either a request or a Bayeux error string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_realtime::bayeux::channel::MAX_CHANNEL_LEN;
use portico_realtime::bayeux::message::{ext_authorization, Refusal, Request};
use portico_realtime::bayeux::Bayeux;

fuzz_target!(|data: &[u8]| {
    let Ok(messages) = Bayeux::parse(data) else {
        return;
    };
    for m in &messages {
        if let Some(authorization) = ext_authorization(m) {
            assert!(authorization.starts_with("Basic ") || authorization.starts_with("Bearer "));
        }
        match Request::from_message(m) {
            Err(Refusal(error)) => {
                let code = error.split("::").next().unwrap_or("");
                assert!(
                    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
                    "{error}"
                );
            }
            Ok(Request::Subscribe { patterns, .. } | Request::Unsubscribe { patterns, .. }) => {
                assert!(!patterns.is_empty());
                for p in patterns {
                    assert!(p.as_str().starts_with('/') && p.as_str().len() <= MAX_CHANNEL_LEN);
                }
            }
            Ok(Request::Publish { channel, .. }) => {
                assert!(!channel.is_wildcard() && !channel.is_meta());
                assert!(channel.matches(channel.as_str()));
            }
            Ok(_) => {}
        }
    }
});
