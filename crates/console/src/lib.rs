//! The admin REST API and, later, the web console. For now: the Gateway Registry API
//! (SPEC GW-8), served in-process behind the gateway at `/api/registry/v1/` on the
//! `gateway` host.
#![forbid(unsafe_code)]

mod admin_token;
mod registry_api;

pub use admin_token::{hash_admin_token, new_admin_token};
pub use registry_api::registry_api;
