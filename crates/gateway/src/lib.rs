//! The gateway: Portico's one front door. It accepts connections (TLS or plain),
//! guards them with limits, routes each request by host and path (SPEC GW-1..GW-10)
//! to a registered backend or an in-process service, and answers errors in one format.
#![forbid(unsafe_code)]

pub mod routing;
