//! The wire protocol shared by the Remote Services relay and the endpoint agent.
//!
//! Layers, bottom up:
//! - [`frame`]: the binary codec of the multiplexed stream channel (`/mts/`);
//! - [`control`]: the JSON messages of the control channel (`/ccf/`).
//!
//! The crate depends on nothing of the server, so the endpoint agent links it alone.
#![forbid(unsafe_code)]

pub mod control;
pub mod frame;

pub use frame::{Frame, GoAwayReason, ResetReason, Role, StreamId};
