//! The gateway's settings, already validated and typed by the binary's configuration loader.
//! The limits, greylisting and proxy settings can be replaced while running
//! ([`crate::Gateway::reconfigure`]); domains, regions and listeners need a restart.

use rustls::pki_types::CertificateDer;
use std::path::PathBuf;
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
    /// Certificate authorities trusted for HTTPS backends besides the system's roots: the
    /// private CA of a service network's internal servers.
    pub backend_roots: Vec<CertificateDer<'static>>,
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
    /// A connection on which no byte moved either way for this long is closed (GW-13),
    /// HTTP and WebSocket alike.
    pub idle_timeout: Duration,
    /// Largest request body, declared or counted while it streams (→ 413).
    pub max_request_size: u64,
    /// Largest single file in a `multipart/form-data` body (→ 413).
    pub max_file_size: u64,
    /// Slow-backend greylisting (GW-14).
    pub greylist: GreylistConfig,
    /// The folder served on `static.{region}.{domain}` (GW-5); none serves nothing there.
    pub static_dir: Option<PathBuf>,
    /// Pings the gateway sends on each WebSocket to keep it open (GW-23); none sends none.
    pub websocket_ping_interval: Option<Duration>,
    /// How often, at most, traffic on a WebSocket opened in a session marks the session
    /// used (GW-23).
    pub session_touch_interval: Duration,
    /// Serve each client connection on one of the process's single-threaded runtimes, one
    /// per core ([`crate::cores`]), rather than on the shared runtime. Read for each new
    /// connection.
    pub per_core_runtimes: bool,
}

/// What greylisting does with a slow endpoint (GW-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreylistMode {
    /// Log and count state changes; forward everything.
    Report,
    /// Also refuse requests to greylisted endpoints while the instance is busy.
    Enforce,
}

#[derive(Debug, Clone)]
pub struct GreylistConfig {
    pub mode: GreylistMode,
    /// A response slower than this makes its endpoint slow.
    pub slow_response: Duration,
    /// How long a slow endpoint stays greylisted.
    pub duration: Duration,
    /// Share of `max_connections` in use above which slow endpoints get greylisted.
    pub load_threshold: f64,
    /// While greylisted, an endpoint gets requests only below this share in use.
    pub admit_below: f64,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            mode: GreylistMode::Report,
            slow_response: Duration::from_secs(30),
            duration: Duration::from_secs(300),
            load_threshold: 0.8,
            admit_below: 0.8,
        }
    }
}

impl GatewayConfig {
    /// Settings for tests and embedding: the defaults of `portico serve`.
    pub fn new(domains: Vec<String>, regions: Vec<String>) -> GatewayConfig {
        GatewayConfig {
            domains,
            regions,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(120),
            backend_roots: Vec::new(),
            max_header_size: 16_000,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_connections: 400,
            idle_timeout: Duration::from_secs(60),
            max_request_size: 150_000_000,
            max_file_size: 100_000_000,
            greylist: GreylistConfig::default(),
            static_dir: None,
            websocket_ping_interval: None,
            session_touch_interval: Duration::from_secs(60),
            per_core_runtimes: true,
        }
    }
}
