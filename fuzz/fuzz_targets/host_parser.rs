//! `parse_host` on arbitrary `Host` values: no panic, and what it returns is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::routing::{parse_host, HostConfig, HostKind};

const DOMAINS: [&str; 3] = ["example.org", "a.example.org", "portico.localhost"];
const REGIONS: [&str; 3] = ["eu1", "eu1-preview", "region123"];

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cfg = HostConfig::new(&own(&DOMAINS), &own(&REGIONS));
    let parsed = parse_host(host, &cfg);
    // Host names are case-insensitive (GW-1).
    assert_eq!(parsed, parse_host(&host.to_ascii_uppercase(), &cfg));
    assert_eq!(parsed, parse_host(&host.to_ascii_lowercase(), &cfg));
    let Some(parsed) = parsed else {
        return;
    };
    assert!(DOMAINS.contains(&&*parsed.domain));
    assert!(REGIONS.contains(&&*parsed.region_label()));
    if let HostKind::WebApp {
        tenant,
        app,
        provider,
    } = &parsed.kind
    {
        assert!(is_name(tenant) && is_name(app));
        assert!(provider.as_deref().is_none_or(is_name));
    }
});
