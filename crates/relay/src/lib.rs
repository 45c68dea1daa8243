//! The Remote Services backend: endpoint control channels, stream joining,
//! protocol-application checks and audit. Arrives with the Remote Services capability.
#![forbid(unsafe_code)]
