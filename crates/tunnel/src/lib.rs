//! The wire protocol shared by the Remote Services relay and the endpoint agent.
//!
//! Layers, bottom up:
//! - [`frame`]: the binary codec of the multiplexed stream channel (`/mts/`);
//! - [`control`]: the JSON messages of the control channel (`/ccf/`);
//! - [`mux`]: the sans-IO multiplexer (streams, credit flow control, keep-alive);
//! - [`tunnel`]: the async driver over any WebSocket-like message transport;
//! - [`lane`]: one stream on a WebSocket of its own, beside the tunnel.
//!
//! The crate depends on nothing of the server, so the endpoint agent links it alone.
#![forbid(unsafe_code)]

pub mod carry;
pub mod config;
pub mod control;
pub mod frame;
pub mod lane;
pub mod mux;
pub mod tunnel;

pub use frame::{Frame, GoAwayReason, ResetReason, Role, StreamId};
pub use mux::{Mux, TunnelConfig};
pub use tunnel::{
    memory_pair, Incoming, IncomingStream, OpenStreamError, Tunnel, TunnelError, TunnelHandle,
    TunnelStream,
};
