//! `portico endpoint doctor`: checks, from where the endpoint runs, everything the tunnel
//! needs on the way to the backend, and says in plain words what to ask IT for when
//! something is in the way. For each backend host the agent uses (the tunnel host, the
//! token host and the gateway API, derived as the agent derives them): DNS, TCP (to the host
//! or to the proxy), the proxy's `CONNECT` and its auth, the TLS handshake with the
//! certificate's details and whether it was intercepted, and on the tunnel host the
//! WebSocket upgrade. Optionally, how long an idle connection survives.

pub mod certificate;
pub mod handshake;
pub mod idle;
pub mod report;
pub mod route;
pub mod websocket;

use std::time::Duration;

use crate::config::{BackendUrl, EndpointConfig, ProxySource};
use crate::link::{CONTROL_PATH, TUNNEL_PATH};
use crate::tls::TrustRoots;
use report::{Check, Sink};

#[derive(Clone, Debug, Default)]
pub struct DoctorOptions {
    /// Run the idle probe with this longest idle period.
    pub idle: Option<Duration>,
}

/// The hosts the agent talks to, each once: the tunnel host first.
pub fn backend_hosts(config: &EndpointConfig) -> Vec<(&'static str, BackendUrl)> {
    let mut hosts: Vec<(&'static str, BackendUrl)> = Vec::new();
    for (role, url) in [
        ("tunnel", &config.backend),
        ("token", &config.token_url),
        ("gateway API", &config.api),
    ] {
        let same = |(_, u): &(&str, BackendUrl)| u.host() == url.host() && u.port() == url.port();
        if !hosts.iter().any(same) {
            hosts.push((role, url.clone()));
        }
    }
    hosts
}

/// Runs every check, reporting into `sink`; true when the tunnel can work from here.
pub async fn run(config: &EndpointConfig, options: &DoctorOptions, sink: &mut dyn Sink) -> bool {
    sink.line(header(config));
    let roots = match TrustRoots::system_and(config.ca_file.as_deref()) {
        Ok(roots) => roots,
        Err(error) => {
            sink.check(Check::fail(
                "trusted CAs",
                error.to_string(),
                "correct `ca_file` in the configuration",
            ));
            allow_list(config, sink);
            return false;
        }
    };
    let mut working = true;
    for (role, url) in backend_hosts(config) {
        sink.line(format!("{} ({role} host):", url.host()));
        working &= check_host(config, &roots, role, &url, sink).await;
    }
    if let Some(longest) = options.idle {
        if working {
            working &= idle::probe(config, &roots, longest, sink).await;
        } else {
            sink.check(Check::info(
                "idle probe",
                "skipped: the backend cannot be reached yet",
            ));
        }
    }
    allow_list(config, sink);
    sink.line(if working {
        "result: the tunnel can work from here".to_string()
    } else {
        "result: something blocks the tunnel; ask IT for the fixes above".to_string()
    });
    working
}

async fn check_host(
    config: &EndpointConfig,
    roots: &TrustRoots,
    role: &str,
    url: &BackendUrl,
    sink: &mut dyn Sink,
) -> bool {
    let Some(tcp) = route::reach(url, config.proxy.as_ref(), sink).await else {
        return false;
    };
    let Some(tls) = handshake::handshake(url, tcp, roots, sink).await else {
        return false;
    };
    if role == "tunnel" {
        return websocket::upgrade(url, tls, sink).await;
    }
    true
}

/// Which endpoint, which backend, which way out: the password never shown.
fn header(config: &EndpointConfig) -> String {
    let role = match config.role {
        crate::config::EndpointRole::Device => "Device Endpoint",
        crate::config::EndpointRole::Service => "Service Endpoint",
    };
    let way = match (&config.proxy, config.proxy_source) {
        (Some(proxy), ProxySource::Environment) => format!("through proxy {proxy} (HTTPS_PROXY)"),
        (Some(proxy), _) => format!("through proxy {proxy} (configuration)"),
        (None, _) => "direct, no proxy".to_string(),
    };
    format!(
        "portico endpoint doctor: {role}, backend {}, {way}",
        config.backend
    )
}

/// The firewall and proxy allow-list for this deployment (seed 000's "Network Settings").
fn allow_list(config: &EndpointConfig, sink: &mut dyn Sink) {
    sink.line("allow-list for this deployment (outbound, for the firewall and the proxy):".into());
    sink.line(format!("  {}", config.token_url));
    sink.line(format!("  {}", config.backend.websocket_url(TUNNEL_PATH)));
    sink.line(format!("  {}", config.backend.websocket_url(CONTROL_PATH)));
    sink.line(format!("  {}", config.api));
    let ports: Vec<String> = {
        let mut ports: Vec<u16> = backend_hosts(config)
            .iter()
            .map(|(_, u)| u.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports.iter().map(u16::to_string).collect()
    };
    sink.line(format!(
        "  destination port {}, protocol WebSocket Secure (WSS) over TLS, no TLS inspection \
         for these hosts",
        ports.join(", ")
    ));
    sink.line(format!(
        "  idle timeout for these connections above {} s (the agent's keep-alive); the proxy's \
         session timeout at least as long as the longest connection session",
        config.keep_alive.as_secs()
    ));
}
