//! The endpoint agent (`portico endpoint`) for Device and Service Endpoints: its
//! configuration, its connection to the backend (through an HTTP proxy when needed, always
//! TLS-verified) and its reconnect schedule.
//!
//! It depends on the tunnel protocol and general crates only, never on a server crate, so
//! that a small agent-only binary can be built for devices.
#![forbid(unsafe_code)]

pub mod allow;
pub mod config;
pub mod no_proxy;

pub use allow::{AllowList, AllowPattern};
pub use config::{
    BackendUrl, ConfigError, EndpointConfig, EndpointRole, ProxyCredentials, ProxyEnvironment,
    ProxySource, ProxyUrl,
};
pub use no_proxy::NoProxy;

pub mod cert_issuer;
pub mod connect;
pub mod credentials;
pub mod proxy;
pub mod tls;
pub mod token;
pub mod transport;

pub use connect::{BackendSocket, ConnectError, Dialer};
pub use proxy::ProxyError;
pub use tls::{TlsSetupError, TrustRoots};
pub mod agent;
pub mod api;
pub mod dialing;
pub mod doctor;
pub mod hosts;
pub mod http_client;
pub mod lanes;
pub mod link;
pub mod listeners;
pub mod permits;
pub mod reconnect;
pub mod register;
pub mod rotate;
pub use agent::{Agent, AgentError};
pub use credentials::{Credentials, CredentialsError};
pub use reconnect::{Backoff, Schedule};
pub use token::{AccessToken, TokenError};
pub use transport::{TransportError, WebSocketTransport};
