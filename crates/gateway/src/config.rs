//! The gateway's settings, already validated and typed by the binary's configuration loader.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Served domains, e.g. `portico.localhost` (GW-1).
    pub domains: Vec<String>,
    /// Served regions with their optional environment, e.g. `eu1`, `eu1-preview`.
    pub regions: Vec<String>,
    /// Time allowed to open a backend connection (→ 504).
    pub connect_timeout: Duration,
    /// Time allowed for a backend's response head (→ 504).
    pub response_timeout: Duration,
    /// Largest request head accepted (→ 431).
    pub max_header_size: usize,
    /// Time a client has to send a whole request head.
    pub header_read_timeout: Duration,
    /// Time a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// How long requests in flight may take to finish at shutdown.
    pub drain_timeout: Duration,
    /// Client connections served at once; more are answered 503 (GW-13).
    pub max_connections: usize,
}

impl GatewayConfig {
    /// Settings for tests and embedding: the defaults of `portico serve`.
    pub fn new(domains: Vec<String>, regions: Vec<String>) -> GatewayConfig {
        GatewayConfig {
            domains,
            regions,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(120),
            max_header_size: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_connections: 400,
        }
    }
}
