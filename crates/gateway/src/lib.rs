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

/// A fresh request id: 128 random bits in hex, from the thread's userspace generator
/// (a system call per request would show in the proxy's cost).
pub fn new_request_id() -> String {
    use rand::Rng;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::thread_rng().gen::<u128>();
    // Hex digits written directly: the formatting machinery showed in per-request profiles.
    let mut id = String::with_capacity(32);
    for nibble in (0..32).rev() {
        id.push(char::from(HEX[(bits >> (nibble * 4)) as usize & 0xf]));
    }
    id
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
}
