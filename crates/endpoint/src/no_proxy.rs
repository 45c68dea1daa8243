//! `NO_PROXY`: the hosts reached directly even though `HTTPS_PROXY` names a proxy.
//!
//! Follows what curl and most tools accept: entries separated by commas (or spaces), `*` for
//! every host, a domain that also covers its subdomains (`example.com`, `.example.com` and
//! `*.example.com` are the same), an IP address, an IP network in CIDR form, and an optional
//! `:port` that limits an entry to one port.

use std::net::IpAddr;

use crate::allow::normalize_host;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Everything,
    Domain {
        name: String,
        port: Option<u16>,
    },
    Network {
        addr: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl NoProxy {
    /// Parses the variable's value. Entries that make no sense are skipped rather than
    /// failing the agent, as other tools do with this variable.
    pub fn parse(value: &str) -> Self {
        let entries = value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .filter_map(Entry::parse)
            .collect();
        NoProxy { entries }
    }

    /// Whether `host:port` is reached without the proxy.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|e| e.matches(&host, ip, port))
    }
}

impl Entry {
    fn parse(text: &str) -> Option<Entry> {
        if text == "*" {
            return Some(Entry::Everything);
        }
        let (body, port) = split_port(text);
        if let Some((addr, prefix)) = body.split_once('/') {
            let addr = normalize_host(addr).parse::<IpAddr>().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.parse::<u8>().ok().filter(|p| *p <= max)?;
            return Some(Entry::Network { addr, prefix, port });
        }
        let name = normalize_host(body);
        if let Ok(addr) = name.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Some(Entry::Network { addr, prefix, port });
        }
        let name = name
            .trim_start_matches('*')
            .trim_start_matches('.')
            .to_string();
        (!name.is_empty()).then_some(Entry::Domain { name, port })
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        match self {
            Entry::Everything => true,
            Entry::Domain { name, port: p } => {
                port_ok(p)
                    && (host == name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|prefix| prefix.ends_with('.')))
            }
            Entry::Network {
                addr,
                prefix,
                port: p,
            } => port_ok(p) && ip.is_some_and(|ip| in_network(ip, *addr, *prefix)),
        }
    }
}

/// `host:port`, `[v6]:port`, or no port. A bare IPv6 address keeps its colons.
fn split_port(text: &str) -> (&str, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (text, None),
        },
        _ => (text, None),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            bits >> (width - prefix)
        }
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            masked(u32::from(a).into(), prefix, 32) == masked(u32::from(b).into(), prefix, 32)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            masked(u128::from(a), prefix, 128) == masked(u128::from(b), prefix, 128)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_cover_their_subdomains() {
        for value in [
            "example.com",
            ".example.com",
            "*.example.com",
            "EXAMPLE.com.",
        ] {
            let n = NoProxy::parse(value);
            assert!(n.bypasses("example.com", 443), "{value}");
            assert!(n.bypasses("rs.Example.com", 443), "{value}");
            assert!(!n.bypasses("badexample.com", 443), "{value}");
            assert!(!n.bypasses("example.com.evil", 443), "{value}");
        }
    }

    #[test]
    fn lists_star_ports_and_networks() {
        let n =
            NoProxy::parse("localhost, 10.0.0.0/8 ,internal.lan:8443 [fd00::1]:443,192.168.1.7");
        assert!(n.bypasses("localhost", 1));
        assert!(n.bypasses("10.200.3.4", 443));
        assert!(!n.bypasses("11.0.0.1", 443));
        assert!(n.bypasses("internal.lan", 8443));
        assert!(!n.bypasses("internal.lan", 443));
        assert!(n.bypasses("[fd00::1]", 443));
        assert!(!n.bypasses("fd00::2", 443));
        assert!(n.bypasses("192.168.1.7", 443));
        assert!(!n.bypasses("192.168.1.8", 443));
        assert!(NoProxy::parse("*").bypasses("anything.at.all", 443));
        assert!(!NoProxy::parse("").bypasses("localhost", 443));
        let v6 = NoProxy::parse("fd00::/16,0.0.0.0/0");
        assert!(v6.bypasses("fd00:1::5", 443));
        assert!(!v6.bypasses("fe80::1", 443));
        assert!(v6.bypasses("8.8.8.8", 443));
    }

    #[test]
    fn nonsense_entries_are_skipped() {
        let n = NoProxy::parse("10.0.0.0/99, ., *., example.org");
        assert!(!n.bypasses("10.0.0.1", 443));
        assert!(n.bypasses("example.org", 443));
        assert!(!n.bypasses("other.net", 443));
    }
}
