//! The admin REST API and the web console: the Gateway Registry API (SPEC GW-8), served
//! in-process behind the gateway at `/api/registry/v1/` on the `gateway` host, and the
//! web console (RS-6, RS-8, GW-6) on `{tenant}-console.{region}.{domain}`.
#![forbid(unsafe_code)]

mod admin_token;
pub mod network;
mod registry_api;
pub mod web;

pub use admin_token::{hash_admin_token, new_admin_token};
pub use registry_api::{registry_api, OperatorCaller};
pub use web::{console_app, ConsoleOptions};
