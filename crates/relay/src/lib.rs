//! The Remote Services backend: the model's rules (who may do what, RS-6; what an
//! endpoint may dial, RS-7), the built-in Protocol Application templates (RS-3) and the
//! REST API under `/api/remoteservices/v1/`. The live side (`live`) holds the
//! endpoints' tunnels: the endpoint directory and the joining of streams.
#![forbid(unsafe_code)]
// Tests may unwrap; the library code may not (workspace lint `clippy::unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod live;
pub mod rules;
pub mod templates;
