//! The default Content-Security-Policy of web-app pages names the request's own static
//! host (GW-20), which depends on the region, environment and domain the request came in
//! on and on the port it named. Formatting it for every response showed in per-request
//! profiles, so each one is made once and kept, up to a bound.

use crate::headers::default_policy;
use crate::routing::ParsedHost;
use http::HeaderValue;
use std::sync::{Arc, Mutex, PoisonError};

/// Policies kept at most: a deployment has a few regions and domains, and its clients
/// name one or two ports. Beyond this (clients naming arbitrary ports) they are made per
/// response, as before there was a cache.
const MAX_KEPT: usize = 64;

/// The policies made so far.
#[derive(Default)]
pub(super) struct Policies {
    kept: Mutex<Vec<Kept>>,
}

struct Kept {
    /// The configured names the parsed host shares (compared by address, which is
    /// cheaper than by content and exact, since every parse hands out the same ones).
    region: Arc<str>,
    env: Option<Arc<str>>,
    domain: Arc<str>,
    /// `:8443`, or empty.
    port: Box<str>,
    policy: Option<HeaderValue>,
}

impl Kept {
    fn is_for(&self, parsed: &ParsedHost, port: &str) -> bool {
        Arc::ptr_eq(&self.region, &parsed.region)
            && Arc::ptr_eq(&self.domain, &parsed.domain)
            && match (&self.env, &parsed.env) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
            && *self.port == *port
    }
}

impl Policies {
    /// The default policy for a request to `host`, parsed as `parsed`.
    pub(super) fn for_host(&self, parsed: &ParsedHost, host: &str) -> Option<HeaderValue> {
        let port = port_of(host);
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = kept.iter().find(|k| k.is_for(parsed, port)) {
            return found.policy.clone();
        }
        let policy = default_policy(&static_host(parsed, port));
        if kept.len() < MAX_KEPT {
            kept.push(Kept {
                region: parsed.region.clone(),
                env: parsed.env.clone(),
                domain: parsed.domain.clone(),
                port: port.into(),
                policy: policy.clone(),
            });
        }
        policy
    }
}

/// The static host of a request's region and domain, with the `:port` the client named
/// (GW-5, GW-20).
fn static_host(parsed: &ParsedHost, port: &str) -> String {
    format!("static.{}.{}{port}", parsed.region_label(), parsed.domain)
}

/// The `:port` a host names, or nothing.
fn port_of(host: &str) -> &str {
    host.rsplit_once(':')
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or("", |(name, _)| &host[name.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{parse_host, HostConfig};

    #[test]
    fn each_static_host_gets_its_own_policy_made_once() {
        let hosts = HostConfig::new(
            &["portico.localhost".into(), "example.org".into()],
            &["eu1".into(), "eu1-preview".into()],
        );
        let policies = Policies::default();
        let policy = |host: &str| {
            let parsed = parse_host(host, &hosts).unwrap();
            let policy = policies.for_host(&parsed, host).unwrap();
            policy
                .to_str()
                .unwrap()
                .split(' ')
                .nth(2)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            policy("a-b.eu1.portico.localhost"),
            "static.eu1.portico.localhost;"
        );
        assert_eq!(
            policy("A-B.EU1.portico.localhost:8443"),
            "static.eu1.portico.localhost:8443;"
        );
        assert_eq!(
            policy("c-d.eu1-preview.example.org"),
            "static.eu1-preview.example.org;"
        );
        assert_eq!(
            policy("a-b.eu1.portico.localhost"),
            "static.eu1.portico.localhost;"
        );
        assert_eq!(policies.kept.lock().unwrap().len(), 3);
        for port in 0..MAX_KEPT + 10 {
            assert_eq!(
                policy(&format!("a-b.eu1.example.org:{port}")),
                format!("static.eu1.example.org:{port};")
            );
        }
        assert_eq!(policies.kept.lock().unwrap().len(), MAX_KEPT);
    }
}
