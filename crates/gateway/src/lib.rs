//! The gateway: Portico's one front door. It accepts connections (TLS or plain),
//! guards them with limits, routes each request by host and path (SPEC GW-1..GW-10)
//! to a registered backend or an in-process service, and answers errors in one format.
#![forbid(unsafe_code)]

pub mod auth;
mod backend_pool;
pub mod body;
pub mod cert_reload;
pub mod client;
pub mod config;
pub mod cores;
pub mod error;
pub mod greylist;
pub mod head_guard;
pub mod headers;
pub mod http2;
pub mod limits;
pub mod metrics;
pub mod ops;
mod overload;
pub mod proxy;
pub mod routing;
mod server;
pub mod service;
pub mod static_files;
pub mod table;
pub mod tls;
pub mod websocket;
mod woken;

pub use config::GatewayConfig;
pub use server::{
    harden_device_cookies, ConnInfo, Gateway, CLIENTLESS_SERVICE, DEVICE_SERVICE, REMOTE_APP,
};
pub use service::{from_tower, InProcess, RequestContext, Services};

/// The request id header, set on both sides of the proxy (GW-15, OPS-3).
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// A fresh request id: 32 hex digits, unique and unpredictable enough to correlate logs.
///
/// Each thread draws two random 64-bit keys once, from the system's generator, and then
/// numbers its ids: each half of an id is a bijective mix (SplitMix64's finaliser) of the
/// count with one key, so a thread never repeats an id, and two threads (or nodes) share
/// one only if their random keys collide. A request id is not a secret: it travels in the
/// clear to the backend and back to the client. Drawing 128 bits per request from the
/// cryptographic generator cost about 1.4 % of a small request's instructions.
pub fn new_request_id() -> String {
    use rand::Rng;
    use std::cell::Cell;
    thread_local! {
        static KEYS: (u64, u64) = {
            let mut rng = rand::thread_rng();
            (rng.gen(), rng.gen())
        };
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = COUNT.with(|count| {
        let n = count.get();
        count.set(n.wrapping_add(1));
        n
    });
    let (high_key, low_key) = KEYS.with(|keys| *keys);
    let halves = [mix(high_key ^ n), mix(low_key.wrapping_add(n))];
    let mut digits = [0u8; 32];
    for (half, out) in halves.into_iter().zip(digits.chunks_exact_mut(16)) {
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = HEX[(half >> (60 - 4 * i)) as usize & 0xf];
        }
    }
    String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
}

/// [`new_request_id`] as a header value, for a request's way through the gateway.
pub fn new_request_id_value() -> http::HeaderValue {
    http::HeaderValue::try_from(new_request_id()).expect("hex digits make a header value")
}

/// SplitMix64's finaliser: a bijection on 64-bit values that spreads every input bit
/// over the output.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_32_lower_case_hex_digits_and_differ() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn request_ids_do_not_repeat_within_a_thread_or_across_threads() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(super::new_request_id()));
        }
        let other: Vec<String> =
            std::thread::spawn(|| (0..10_000).map(|_| super::new_request_id()).collect())
                .join()
                .unwrap();
        for id in other {
            assert!(
                seen.insert(id),
                "an id of another thread repeated one of this thread's"
            );
        }
    }
}
