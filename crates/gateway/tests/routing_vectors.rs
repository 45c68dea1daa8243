//! The shared routing test vectors (`testdata/*.tsv`, SPEC GW-1..GW-10): every data row is
//! a test case. Each file's header comment defines its columns; a failing or malformed
//! row is reported with its line number, and all of a file's failures are reported at once.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::path::PathBuf;

use portico_gateway::routing::{
    decode_unreserved, parse_api_path, parse_host, validate_target, AntPattern, HostConfig,
    HostKind, VpnrtsService,
};

/// The vector files and what checks them; a new file in `testdata/` must be added here.
const FILES: [&str; 4] = [
    "hosts.tsv",
    "api-paths.tsv",
    "ant-paths.tsv",
    "rfc3986-targets.tsv",
];

fn testdata(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(file)
}

/// Runs `check` on every data row of `file` (split on tabs, empty fields kept) and fails
/// with every row that did not pass.
fn run_vectors(file: &str, check: impl Fn(&[&str]) -> Result<(), String>) {
    let text = std::fs::read_to_string(testdata(file))
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let (mut data_rows, mut checked) = (0, 0);
    let mut failures = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        data_rows += 1;
        let fields: Vec<&str> = line.split('\t').collect();
        match check(&fields) {
            Ok(()) => checked += 1,
            Err(why) => failures.push(format!("{file}:{}: {line:?}: {why}", index + 1)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {data_rows} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "{file} has no data rows");
    assert_eq!(checked, data_rows, "{file}: every data row must be checked");
}

/// `"-"` is an absent field.
fn opt(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

fn columns<'a, const N: usize>(fields: &[&'a str]) -> Result<[&'a str; N], String> {
    fields
        .try_into()
        .map_err(|_| format!("expected {N} tab-separated columns, found {}", fields.len()))
}

#[test]
fn every_vector_file_is_checked() {
    let dir = testdata("");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {dir:?}: {e}"));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tsv") {
            assert!(
                FILES.contains(&name.as_str()),
                "{name} has no checker in this test"
            );
        }
    }
}

/// The deployment named in the header of hosts.tsv.
const HOST_DOMAINS: [&str; 3] = ["mindsphere.io", "mindsphere-in.cn", "portico.localhost"];
const HOST_REGIONS: [&str; 5] = ["eu1", "eu1-preview", "eu2", "cn1", "region123"];

#[test]
fn hosts() {
    let header = std::fs::read_to_string(testdata("hosts.tsv")).unwrap_or_default();
    for name in HOST_DOMAINS.iter().chain(&HOST_REGIONS) {
        assert!(
            header.contains(name),
            "hosts.tsv no longer configures {name}"
        );
    }
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cfg = HostConfig::new(&own(&HOST_DOMAINS), &own(&HOST_REGIONS));
    run_vectors("hosts.tsv", |fields| {
        let [host, kind, tenant, app, provider, region, env, domain] = columns(fields)?;
        let expected_kind = match kind {
            "unknown" => None,
            "webapp" => Some(HostKind::WebApp {
                tenant: tenant.to_owned(),
                app: app.to_owned(),
                provider: opt(provider).map(str::to_owned),
            }),
            "gateway" => Some(HostKind::Gateway),
            "southgate" => Some(HostKind::Southgate),
            "static" => Some(HostKind::Static),
            "vpnrts" => Some(HostKind::Vpnrts {
                service: match app {
                    "connectivity" => VpnrtsService::Connectivity,
                    "wss" => VpnrtsService::Wss,
                    other => return Err(format!("unknown vpnrts service {other:?}")),
                },
            }),
            other => return Err(format!("unknown kind {other:?}")),
        };
        let expected = expected_kind.map(|kind| (kind, region, opt(env), domain));
        let parsed = parse_host(host, &cfg);
        let actual = parsed
            .as_ref()
            .map(|p| (p.kind.clone(), &*p.region, p.env.as_deref(), &*p.domain));
        if actual != expected {
            return Err(format!("expected {expected:?}, got {actual:?}"));
        }
        Ok(())
    });
}

#[test]
fn api_paths() {
    run_vectors("api-paths.tsv", |fields| {
        let parsed = parse_api_path(fields.first().copied().unwrap_or_default());
        let actual = parsed.map(|p| (p.name, p.provider, p.major, p.endpoint));
        let expected = match fields {
            [_, "invalid"] => None,
            _ => {
                let [_, api, provider, major, endpoint] = columns(fields)?;
                let major: u32 = major.parse().map_err(|e| format!("major {major:?}: {e}"))?;
                Some((api, opt(provider), major, endpoint))
            }
        };
        if actual != expected {
            return Err(format!("expected {expected:?}, got {actual:?}"));
        }
        Ok(())
    });
}

#[test]
fn ant_paths() {
    run_vectors("ant-paths.tsv", |fields| {
        let [pattern, path, expected] = columns(fields)?;
        let expected = match expected {
            "match" => true,
            "nomatch" => false,
            other => return Err(format!("expected must be match or nomatch, not {other:?}")),
        };
        let actual = AntPattern::new(pattern).matches(&decode_unreserved(path));
        if actual != expected {
            return Err(format!("expected matches = {expected}, got {actual}"));
        }
        Ok(())
    });
}

#[test]
fn rfc3986_targets() {
    run_vectors("rfc3986-targets.tsv", |fields| {
        let [target, expected] = columns(fields)?;
        let result = validate_target(target);
        match (expected, &result) {
            ("ok", Ok(())) | ("400", Err(_)) => Ok(()),
            ("ok" | "400", _) => Err(format!("expected {expected}, got {result:?}")),
            (other, _) => Err(format!("expected must be ok or 400, not {other:?}")),
        }
    });
}
