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
mod held_wakes;
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

/// A fresh request id: 32 hex digits, unique.
///
/// Each thread draws two random keys once and numbers its ids. The lower half of an id is
/// a scrambled count: the scrambling (SplitMix64's finaliser) maps distinct counts to
/// distinct values, so a thread never repeats an id, and ids of different threads differ
/// in their keys. The upper half scrambles the count with the other key, so ids look
/// random and do not show a count. An id is a label for finding a request in logs, not a
/// secret: a client may send its own (GW-15). A keyed SipHash per half, as before, cost
/// about 500 instructions per request; this costs a few dozen.
pub fn new_request_id() -> String {
    String::from_utf8(request_id_digits().to_vec()).expect("hex digits are ASCII")
}

/// The 32 hex digits of a new request id (see [`new_request_id`]).
fn request_id_digits() -> [u8; 32] {
    use std::cell::Cell;
    thread_local! {
        static KEYS: [u64; 2] = rand::random();
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = COUNT.with(|count| {
        let n = count.get();
        count.set(n.wrapping_add(1));
        n
    });
    let [upper, lower] = KEYS.with(|&[a, b]| [scramble(n ^ a), scramble(n.wrapping_add(b))]);
    let mut digits = [0u8; 32];
    for (half, out) in [upper, lower].into_iter().zip(digits.chunks_exact_mut(16)) {
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = HEX[(half >> (60 - 4 * i)) as usize & 0xf];
        }
    }
    digits
}

/// SplitMix64's finaliser: a bijection on `u64` whose output bits each depend on all of
/// the input's.
fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// [`new_request_id`] as a header value, for a request's way through the gateway. The
/// value goes to the backend and back to the client: it is made shareable at once, in
/// one allocation, where a value made from a `String` allocates again when first cloned.
pub fn new_request_id_value() -> http::HeaderValue {
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(request_id_digits()))
        .expect("hex digits make a header value")
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
