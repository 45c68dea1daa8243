//! The gateway: Portico's one front door. It accepts connections (TLS or plain),
//! guards them with limits, routes each request by host and path (SPEC GW-1..GW-10)
//! to a registered backend or an in-process service, and answers errors in one format.
#![forbid(unsafe_code)]

pub mod body;
pub mod client;
pub mod config;
pub mod error;
pub mod head_guard;
pub mod headers;
pub mod metrics;
pub mod ops;
mod overload;
pub mod proxy;
pub mod routing;
mod server;
pub mod service;
pub mod table;
pub mod tls;
pub mod websocket;

pub use config::GatewayConfig;
pub use server::{ConnInfo, Gateway};
pub use service::{from_tower, InProcess, RequestContext, Services};

/// The request id header, set on both sides of the proxy (GW-15, OPS-3).
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// A fresh request id: 128 random bits in hex, from the thread's userspace generator
/// (a system call per request would show in the proxy's cost).
pub fn new_request_id() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}
