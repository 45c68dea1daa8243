//! Device Connectivity (DC-1..DC-4): the device REST API (`rest`), the Bayeux
//! notification server (`bayeux`, `transport`) and operations, following the Cumulocity
//! device API so its public clients work unchanged.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accounts;
pub mod bayeux;
pub mod change;
pub mod notifications;

pub use accounts::{Accounts, AuthError, Caller, DeviceCredentials};
pub use change::{Action, Change, Kind, Notify};
pub use notifications::Notifications;

use std::net::IpAddr;

/// The caller's address, put into each request's extensions by whoever serves the
/// router (the gateway's request context), for login throttling.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);
