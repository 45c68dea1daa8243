//! The endpoint agent (`portico endpoint`) for Device and Service Endpoints.
//! It may depend on the tunnel protocol and nothing server-side, so that a small
//! agent-only binary can be built for devices. Arrives with the Remote Services capability.
#![forbid(unsafe_code)]
