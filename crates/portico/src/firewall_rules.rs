//! `portico firewall-rules`: what a site's IT department must allow for this deployment
//! (seed 000's "Network Settings"), from the server's own configuration: the host names of
//! each domain and region, who connects to them, the one port, and the timeouts a firewall
//! or proxy must not undercut. Everything is outbound from the sites; nothing inbound.

use crate::config::Config;
use portico_console::network::{AllowList, AllowRow};

/// The endpoint agent's keep-alive interval by default: a firewall must let a tunnel sit
/// idle longer than this.
const ENDPOINT_KEEP_ALIVE_SECS: u64 = portico_endpoint::config::DEFAULT_KEEP_ALIVE.as_secs();

/// The allow-list as text; `port` is the one clients use (443 behind the usual public
/// listener).
pub fn render(config: &Config, port: u16) -> String {
    allow_list(config, port).to_text()
}

/// The allow-list of this deployment: the hosts of every region of every domain, and the
/// advice for firewalls and proxies (also shown on the console's Network page).
pub fn allow_list(config: &Config, port: u16) -> AllowList {
    let n = &config.notifications;
    let mut rows = Vec::new();
    for domain in &config.domains {
        for region in &config.regions {
            let hosts = [
                (
                    format!("connectivity.{region}.vpnrts.{domain}"),
                    "HTTPS",
                    "endpoint agents (factory and service networks): tokens",
                ),
                (
                    format!("wss.{region}.vpnrts.{domain}"),
                    "WSS (WebSocket over TLS)",
                    "endpoint agents: the tunnel and its control channel, kept open",
                ),
                (
                    format!("southgate.{region}.{domain}"),
                    "HTTPS and WSS",
                    "devices: data up, operations down (long polls or a WebSocket)",
                ),
                (
                    format!("gateway.{region}.{domain}"),
                    "HTTPS",
                    "APIs, and `portico connect` from service networks",
                ),
                (
                    format!("*.{region}.{domain}"),
                    "HTTPS and WSS",
                    "browsers: web apps, the console, static content",
                ),
            ];
            rows.extend(hosts.into_iter().map(|(host, protocol, who)| AllowRow {
                domain: domain.clone(),
                region: region.clone(),
                host,
                port,
                protocol: protocol.into(),
                who: who.into(),
            }));
        }
    }
    let advice = vec![
        "WebSocket upgrades (HTTP/1.1 `Upgrade: websocket`) to the wss and southgate hosts."
            .to_string(),
        "No TLS inspection for the vpnrts and southgate hosts: agents and devices check the \
         certificate, and refuse an inspecting proxy's (`portico endpoint doctor` names it)."
            .to_string(),
        format!(
            "Idle connections kept for more than 60 s: endpoint tunnels send a keep-alive every \
             {ENDPOINT_KEEP_ALIVE_SECS} s, notification WebSockets are pinged every {} s, and a \
             device's long poll is held up to {} s. Common firewall idle timeouts (10-15 min) are \
             far above these.",
            n.websocket_ping_interval.as_secs(),
            n.max_connect_timeout.as_secs(),
        ),
        format!(
            "Through a proxy: `CONNECT` to these hosts on port {port}, with a session time at \
             least as long as the longest Remote Services connection session."
        ),
    ];
    AllowList { port, rows, advice }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_of_every_domain_is_listed_with_its_hosts_and_timeouts() {
        let mut config =
            crate::config::parse("", None, std::path::Path::new("/etc/portico"), &[]).unwrap();
        config.domains = vec!["example.com".into(), "example.org".into()];
        config.regions = vec!["eu1".into(), "us1-preview".into()];
        let text = render(&config, 443);
        for domain in ["example.com", "example.org"] {
            for region in ["eu1", "us1-preview"] {
                for host in [
                    format!("connectivity.{region}.vpnrts.{domain}"),
                    format!("wss.{region}.vpnrts.{domain}"),
                    format!("southgate.{region}.{domain}"),
                    format!("gateway.{region}.{domain}"),
                ] {
                    assert!(text.contains(&format!("  {host} ")), "{host} in\n{text}");
                }
            }
        }
        assert!(text.contains("TCP 443"), "{text}");
        assert!(text.contains("held up to 50 s"), "{text}");
        assert!(text.contains("pinged every 30 s"), "{text}");
        assert!(text.contains("keep-alive every 20 s"), "{text}");
    }
}
