//! Host name parsing (SPEC GW-1..GW-6).
//!
//! A request's `Host` decides which kind of front door it knocked on:
//!
//! | host | kind |
//! |---|---|
//! | `{tenant}-{app}[-{provider}].{region}[-{env}].{domain}` | web app (GW-1) |
//! | `gateway.{region}[-{env}].{domain}` | active clients (GW-3) |
//! | `southgate.{region}[-{env}].{domain}` | device agents (GW-4) |
//! | `static.{region}[-{env}].{domain}` | shared static assets (GW-5) |
//! | `{connectivity\|wss}.{region}[-{env}].vpnrts.{domain}` | Remote Services (GW-6) |
//!
//! Only configured domains and region labels are served; anything else is `None`, which
//! the caller answers with 404 (GW-7). This runs on every request, so the input is never
//! copied or lower-cased as a whole: comparisons ignore ASCII case, and only the names that
//! end up in the result are allocated (the configured domain and region are shared).

use std::borrow::Cow;
use std::sync::Arc;

/// The domains and region labels a deployment serves.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Lower-cased, without a trailing dot, longest first so that a domain nested in
    /// another (`a.example.org` and `example.org`) gets the first try.
    domains: Vec<Arc<str>>,
    regions: Vec<RegionLabel>,
}

/// A configured `{region}[-{env}]` label, kept whole for matching and split for the result.
#[derive(Debug, Clone)]
struct RegionLabel {
    label: String,
    region: Arc<str>,
    env: Option<Arc<str>>,
}

impl HostConfig {
    /// `regions` are written as in host names: `eu1`, or `eu1-preview` for region `eu1`
    /// in environment `preview`. Configuration is trusted; empty entries are ignored.
    pub fn new(domains: &[String], regions: &[String]) -> HostConfig {
        let mut domains: Vec<Arc<str>> = domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .map(Arc::from)
            .collect();
        domains.sort_by_key(|d| std::cmp::Reverse(d.len()));
        domains.dedup();
        let regions = regions
            .iter()
            .map(|r| r.to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .map(|label| {
                let (region, env) = match label.split_once('-') {
                    Some((region, env)) => (Arc::from(region), Some(Arc::from(env))),
                    None => (Arc::from(label.as_str()), None),
                };
                RegionLabel { label, region, env }
            })
            .collect();
        HostConfig { domains, regions }
    }

    fn region(&self, label: &str) -> Option<&RegionLabel> {
        self.regions
            .iter()
            .find(|r| r.label.eq_ignore_ascii_case(label))
    }
}

/// What a host name addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// A web app as seen by one tenant (GW-1); `provider` is `None` for core apps.
    WebApp {
        tenant: String,
        app: String,
        provider: Option<String>,
    },
    /// `gateway.…`: API calls of active clients (GW-3).
    Gateway,
    /// `southgate.…`: API calls of device agents (GW-4).
    Southgate,
    /// `static.…`: shared static assets (GW-5).
    Static,
    /// `….vpnrts.…`: Remote Services endpoints (GW-6).
    Vpnrts { service: VpnrtsService },
}

/// The two Remote Services host names (GW-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpnrtsService {
    /// `connectivity.…`: the token endpoint.
    Connectivity,
    /// `wss.…`: the tunnel endpoints.
    Wss,
}

/// A host name that this deployment serves. All names are lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHost {
    pub kind: HostKind,
    pub region: Arc<str>,
    pub env: Option<Arc<str>>,
    pub domain: Arc<str>,
}

impl ParsedHost {
    /// The region label as written in host names: `eu1` or `eu1-preview`.
    pub fn region_label(&self) -> Cow<'_, str> {
        match &self.env {
            Some(env) => Cow::Owned(format!("{}-{}", self.region, env)),
            None => Cow::Borrowed(&self.region),
        }
    }

    /// The tenant a web-app host names: taken out of a host of its own rather than
    /// copied, copied out of a borrowed one.
    pub fn tenant_of(host: Cow<'_, ParsedHost>) -> Option<String> {
        match host {
            Cow::Owned(ParsedHost {
                kind: HostKind::WebApp { tenant, .. },
                ..
            }) => Some(tenant),
            Cow::Borrowed(ParsedHost {
                kind: HostKind::WebApp { tenant, .. },
                ..
            }) => Some(tenant.clone()),
            _ => None,
        }
    }
}

/// Parses a `Host` header value (or URI authority without user info). A `:port` and one
/// trailing dot are ignored; case is ignored. `None` means the host is not served here.
pub fn parse_host(host: &str, cfg: &HostConfig) -> Option<ParsedHost> {
    let name = strip_port(host)?;
    let name = name.strip_suffix('.').unwrap_or(name);
    // Try every configured domain that fits: with nested domains, the longer one may
    // leave a prefix that does not parse while the shorter one does.
    cfg.domains.iter().find_map(|domain| {
        let prefix = strip_domain(name, domain)?;
        parse_prefix(prefix, domain, cfg)
    })
}

/// Removes a `:port`; a colon must be followed by decimal digits only.
fn strip_port(host: &str) -> Option<&str> {
    match super::cut(host, b':') {
        None => Some(host),
        Some((name, port))
            if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(name)
        }
        Some(_) => None,
    }
}

/// `name` without `.{domain}` at its end, compared ignoring ASCII case.
fn strip_domain<'a>(name: &'a str, domain: &str) -> Option<&'a str> {
    let split = name.len().checked_sub(domain.len() + 1)?;
    // `get` also rejects a split inside a multi-byte character.
    let (prefix, rest) = (name.get(..split)?, name.get(split..)?);
    let suffix = rest.strip_prefix('.')?;
    suffix.eq_ignore_ascii_case(domain).then_some(prefix)
}

/// Parses what precedes the domain: `{first}.{region}` or `{service}.{region}.vpnrts`.
fn parse_prefix(prefix: &str, domain: &Arc<str>, cfg: &HostConfig) -> Option<ParsedHost> {
    let (first, rest) = super::cut(prefix, b'.')?;
    let (region, more) = match super::cut(rest, b'.') {
        Some((region, more)) => (region, Some(more)),
        None => (rest, None),
    };
    let region = cfg.region(region)?;
    let kind = match more {
        None => first_label_kind(first)?,
        // What follows the region must be exactly `vpnrts`, with no label after it.
        Some(vpnrts) if vpnrts.eq_ignore_ascii_case("vpnrts") => {
            let service = if first.eq_ignore_ascii_case("connectivity") {
                VpnrtsService::Connectivity
            } else if first.eq_ignore_ascii_case("wss") {
                VpnrtsService::Wss
            } else {
                return None;
            };
            HostKind::Vpnrts { service }
        }
        _ => return None,
    };
    Some(ParsedHost {
        kind,
        region: region.region.clone(),
        env: region.env.clone(),
        domain: domain.clone(),
    })
}

/// The first label of a non-vpnrts host: a fixed name or `tenant-app[-provider]`.
fn first_label_kind(label: &str) -> Option<HostKind> {
    // Fixed names have no hyphen and web-app labels always have one, so they never clash.
    for (fixed, kind) in [
        ("gateway", HostKind::Gateway),
        ("southgate", HostKind::Southgate),
        ("static", HostKind::Static),
    ] {
        if label.eq_ignore_ascii_case(fixed) {
            return Some(kind);
        }
    }
    let (tenant, rest) = super::cut(label, b'-')?;
    let (app, provider) = match super::cut(rest, b'-') {
        Some((app, provider)) => (app, Some(provider)),
        None => (rest, None),
    };
    // A name holds no hyphen, so a fourth part fails as part of the provider.
    let (tenant, app) = (name(tenant)?, name(app)?);
    let provider = match provider {
        Some(provider) => Some(name(provider)?),
        None => None,
    };
    Some(HostKind::WebApp {
        tenant,
        app,
        provider,
    })
}

/// A tenant, app or provider name (`[a-z0-9]{1,63}`, GW-1), lower-cased.
fn name(s: &str) -> Option<String> {
    let valid = !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HostConfig {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        HostConfig::new(
            &s(&["portico.localhost", "example.org", "a.example.org."]),
            &s(&["eu1", "eu1-preview", "US2"]),
        )
    }

    fn kind(host: &str) -> Option<HostKind> {
        parse_host(host, &cfg()).map(|p| p.kind)
    }

    fn web(tenant: &str, app: &str, provider: Option<&str>) -> Option<HostKind> {
        Some(HostKind::WebApp {
            tenant: tenant.into(),
            app: app.into(),
            provider: provider.map(Into::into),
        })
    }

    #[test]
    fn web_apps_split_into_two_or_three_names() {
        assert_eq!(kind("t-app.eu1.example.org"), web("t", "app", None));
        assert_eq!(kind("t-app-p.eu1.example.org"), web("t", "app", Some("p")));
        assert_eq!(kind("t.eu1.example.org"), None);
        assert_eq!(kind("t-app-p-x.eu1.example.org"), None);
        assert_eq!(kind("t--app.eu1.example.org"), None);
        assert_eq!(kind("t-app-.eu1.example.org"), None);
        assert_eq!(kind("t_x-app.eu1.example.org"), None);
    }

    #[test]
    fn region_label_and_environment() {
        let p = parse_host("gateway.eu1-preview.example.org", &cfg()).expect("served");
        assert_eq!((&*p.region, p.env.as_deref()), ("eu1", Some("preview")));
        assert_eq!(p.region_label(), "eu1-preview");
        let p = parse_host("gateway.us2.example.org", &cfg()).expect("configured in upper case");
        assert_eq!(p.region_label(), "us2");
        assert_eq!(kind("gateway.eu1-test.example.org"), None);
        assert_eq!(kind("gateway.eu2.example.org"), None);
    }

    #[test]
    fn port_trailing_dot_and_case_are_ignored() {
        assert_eq!(kind("GATEWAY.EU1.Example.ORG:443"), Some(HostKind::Gateway));
        assert_eq!(kind("static.eu1.example.org."), Some(HostKind::Static));
        assert_eq!(kind("static.eu1.example.org.:8080"), Some(HostKind::Static));
        assert_eq!(kind("static.eu1.example.org:"), None);
        assert_eq!(kind("static.eu1.example.org:80x"), None);
        assert_eq!(kind("static.eu1.example.org:1:2"), None);
    }

    #[test]
    fn nested_domains_pick_the_one_that_parses() {
        let p = parse_host("southgate.eu1.a.example.org", &cfg()).expect("served");
        assert_eq!((p.kind, &*p.domain), (HostKind::Southgate, "a.example.org"));
    }

    #[test]
    fn vpnrts_hosts() {
        let vpn = |service| Some(HostKind::Vpnrts { service });
        assert_eq!(
            kind("wss.eu1.vpnrts.portico.localhost"),
            vpn(VpnrtsService::Wss)
        );
        assert_eq!(
            kind("connectivity.eu1-preview.vpnrts.portico.localhost"),
            vpn(VpnrtsService::Connectivity)
        );
        assert_eq!(kind("gateway.eu1.vpnrts.portico.localhost"), None);
        assert_eq!(kind("wss.eu1.other.portico.localhost"), None);
        assert_eq!(kind("x.wss.eu1.vpnrts.portico.localhost"), None);
    }

    #[test]
    fn junk_is_unknown() {
        for host in [
            "",
            ".",
            ":",
            "example.org",
            ".example.org",
            "eu1.example.org",
            "ä-b.eu1.example.org",
            "[::1]:80",
        ] {
            assert_eq!(kind(host), None, "{host:?}");
        }
        assert_eq!(
            parse_host("gateway.eu1.example.org", &HostConfig::default()),
            None
        );
    }
}
