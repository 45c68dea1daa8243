//! Configuration (SPEC OPS-4): one TOML file, found by `--config FILE`, else
//! `PORTICO_CONFIG`, else `./portico.toml` if present, else the built-in defaults.
//! Environment variables override single keys, with `__` between levels
//! (`PORTICO_SERVER__ADMIN_LISTEN=127.0.0.1:9191`). Relative paths in a file are relative
//! to that file's folder. Every error names the file, the line or key, and the reason.

use anyhow::{anyhow, bail, Context, Result};
use portico_gateway::config::{GreylistConfig, GreylistMode};
use portico_store::mask_password;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod cluster;
mod notifications;
pub use cluster::ClusterConfig;
use notifications::RawNotifications;
pub use notifications::{fits_idle_timeout, NotificationsConfig};

/// The defaults of a fresh clone: everything on loopback, plain HTTP on 8080 for curl
/// and browsers, the demo app on.
const BUILT_IN: &str = r#"
[server]
listen_plain = "127.0.0.1:8080"
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    tls: Option<RawTls>,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    greylist: RawGreylist,
    #[serde(default, rename = "static")]
    static_files: RawStatic,
    #[serde(default)]
    websocket: RawWebSocket,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    notifications: RawNotifications,
    cluster: Option<cluster::RawCluster>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    demo: RawDemo,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    public_port: Option<u16>,
    listen_plain: Option<String>,
    admin_listen: String,
    data_dir: String,
    database: Option<String>,
    domains: Vec<String>,
    regions: Vec<String>,
    registry: Option<String>,
    registry_cache_ttl: String,
    drain_timeout: String,
    per_core_runtimes: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8443".into(),
            public_port: None,
            listen_plain: None,
            admin_listen: "127.0.0.1:9090".into(),
            data_dir: "./data".into(),
            database: None,
            domains: vec!["portico.localhost".into()],
            regions: vec!["eu1".into()],
            registry: None,
            registry_cache_ttl: "12h".into(),
            drain_timeout: "30s".into(),
            per_core_runtimes: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProxy {
    connect_timeout: String,
    response_timeout: String,
    backend_ca_file: Option<String>,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            connect_timeout: "5s".into(),
            response_timeout: "120s".into(),
            backend_ca_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    idle_timeout: String,
    header_read_timeout: String,
    max_connections: usize,
    max_request_size: String,
    max_file_size: String,
    max_header_size: String,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            idle_timeout: "60s".into(),
            header_read_timeout: "10s".into(),
            max_connections: 400,
            max_request_size: "150MB".into(),
            max_file_size: "100MB".into(),
            max_header_size: "16kB".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGreylist {
    mode: String,
    slow_response: String,
    duration: String,
    load_threshold: f64,
    admit_below: f64,
}

impl Default for RawGreylist {
    fn default() -> Self {
        RawGreylist {
            mode: "report".into(),
            slow_response: "30s".into(),
            duration: "5m".into(),
            load_threshold: 0.8,
            admit_below: 0.8,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStatic {
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWebSocket {
    ping_interval: String,
}

/// Lifetimes of what the identity service hands out (SPEC ID-1, ID-3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIdentity {
    session_inactive_timeout: String,
    session_max_lifetime: String,
    access_token_lifetime: String,
    refresh_token_lifetime: String,
    key_rotation: String,
}

impl Default for RawIdentity {
    fn default() -> Self {
        RawIdentity {
            session_inactive_timeout: "30m".into(),
            session_max_lifetime: "12h".into(),
            access_token_lifetime: "30m".into(),
            refresh_token_lifetime: "12h".into(),
            key_rotation: "24h".into(),
        }
    }
}

impl Default for RawWebSocket {
    fn default() -> Self {
        RawWebSocket {
            ping_interval: "0s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDemo {
    enabled: bool,
}

impl Default for RawDemo {
    fn default() -> Self {
        RawDemo { enabled: true }
    }
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// A development certificate generated into the data folder.
    Development,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    pub listen: SocketAddr,
    /// The TLS port clients use: `listen`'s, unless a load balancer in front listens on
    /// another (`server.public_port`). Tokens name it in their issuer, so every node of a
    /// cluster must say the same.
    pub public_port: u16,
    pub listen_plain: Option<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A database URL with any relative SQLite path made absolute.
    pub database: String,
    pub domains: Vec<String>,
    pub regions: Vec<String>,
    pub registry: Option<PathBuf>,
    pub registry_cache_ttl: Duration,
    /// How long requests in flight may take to finish after SIGTERM (GW-24).
    pub drain_timeout: Duration,
    /// Client connections on one single-threaded runtime per core (`gateway::cores`).
    pub per_core_runtimes: bool,
    pub tls: TlsSource,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// `proxy.backend_ca_file`'s certificates, read when the configuration is loaded.
    pub backend_roots: Vec<CertificateDer<'static>>,
    pub max_header_size: usize,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub max_request_size: u64,
    pub max_file_size: u64,
    pub greylist: GreylistConfig,
    pub static_dir: Option<PathBuf>,
    /// None when `websocket.ping_interval` is `0s`.
    pub websocket_ping_interval: Option<Duration>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub demo: bool,
    pub identity: portico_identity::IdentityConfig,
    pub notifications: NotificationsConfig,
    /// `[cluster]`: this node's part in a cluster of nodes on one PostgreSQL; `None` alone.
    pub cluster: Option<ClusterConfig>,
}

/// Finds and loads the configuration, with the environment's overrides.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    // Variables that are not Unicode cannot be Portico's; they are skipped, not a panic.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let file = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => match std::env::var_os("PORTICO_CONFIG").filter(|v| !v.is_empty()) {
            Some(path) => Some(PathBuf::from(path)),
            None => Some(PathBuf::from("portico.toml")).filter(|p| p.exists()),
        },
    };
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let base = if base.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                base
            };
            parse(&text, Some(&path), &base, &env)
        }
        None => parse(BUILT_IN, None, Path::new("."), &env),
    }
}

/// Parses a configuration text. `base` is the folder relative paths start from.
pub fn parse(
    text: &str,
    file: Option<&Path>,
    base: &Path,
    env: &[(String, String)],
) -> Result<Config> {
    let origin = file.map_or_else(
        || "built-in defaults".to_string(),
        |f| f.display().to_string(),
    );
    // Deserialized from the text first, so that a mistake in the file is reported with
    // its line; then again with the environment's overrides merged in.
    toml::from_str::<RawConfig>(text).map_err(|e| toml_error(&origin, text, &e))?;
    let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(&origin, text, &e))?;
    apply_env(&mut table, env)?;
    let raw: RawConfig =
        RawConfig::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
            anyhow!(
                "{origin} with PORTICO_* environment overrides: {}",
                e.message().trim()
            )
        })?;
    validate(raw, file, base).map_err(|e| anyhow!("{origin}: {e:#}"))
}

fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            anyhow!("{origin}:{line}: {}", e.message().trim())
        }
        None => anyhow!("{origin}: {}", e.message().trim()),
    }
}

/// Applies `PORTICO_A__B=value` overrides: `a.b = value`. A value that parses as a TOML
/// value (a number, `true`, `["x"]`) is taken as one; anything else is a string.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<()> {
    for (name, value) in env {
        let Some(path) = name.strip_prefix("PORTICO_") else {
            continue;
        };
        if !path.contains("__") {
            continue; // PORTICO_CONFIG, PORTICO_ADMIN_TOKEN and friends are not overrides.
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            bail!("environment variable {name}: empty key between __ separators");
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, parents) = keys.split_last().unwrap_or((&keys[0], &[]));
        let mut node = &mut *table;
        for key in parents {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = entry
                .as_table_mut()
                .ok_or_else(|| anyhow!("environment variable {name}: {key} is not a section"))?;
        }
        if value.is_empty() {
            node.remove(last);
        } else {
            node.insert(last.clone(), parsed);
        }
    }
    Ok(())
}

fn validate(raw: RawConfig, file: Option<&Path>, base: &Path) -> Result<Config> {
    let addr = |key: &str, value: &str| -> Result<SocketAddr> {
        value
            .parse()
            .map_err(|_| anyhow!("{key}: \"{value}\" is not an address like 127.0.0.1:8443"))
    };
    let server = raw.server;
    let data_dir = resolve(base, &server.data_dir);
    let database = match &server.database {
        Some(url) => resolve_database(base, url).context("server.database")?,
        None => format!("sqlite://{}", data_dir.join("portico.db").display()),
    };
    let listen = addr("server.listen", &server.listen)?;
    if server.public_port == Some(0) {
        bail!("server.public_port: 1 to 65535, the TLS port clients use");
    }
    let cluster = cluster::validate(raw.cluster.as_ref(), base)?;
    if cluster.is_some() && !database.starts_with("postgres") {
        bail!(
            "[cluster]: the nodes of a cluster share one PostgreSQL; set server.database to a \
             postgres:// URL"
        );
    }
    if server.domains.is_empty() {
        bail!("server.domains: at least one domain is needed, e.g. [\"portico.localhost\"]");
    }
    if server.regions.is_empty() {
        bail!("server.regions: at least one region is needed, e.g. [\"eu1\"]");
    }
    for domain in &server.domains {
        let ok = !domain.is_empty()
            && domain.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            bail!("server.domains: \"{domain}\" is not a domain name");
        }
    }
    for region in &server.regions {
        let mut parts = region.splitn(2, '-');
        let ok = parts.all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if !ok {
            bail!("server.regions: \"{region}\" is not a region like eu1 or eu1-preview");
        }
    }
    let idle_timeout = match duration("limits.idle_timeout", &raw.limits.idle_timeout)? {
        d if d.is_zero() => bail!("limits.idle_timeout: must be more than 0s"),
        d => d,
    };
    Ok(Config {
        file: file.map(Path::to_path_buf),
        listen,
        public_port: server.public_port.unwrap_or(listen.port()),
        listen_plain: match server.listen_plain.as_deref() {
            None | Some("") => None,
            Some(a) => Some(addr("server.listen_plain", a)?),
        },
        admin_listen: addr("server.admin_listen", &server.admin_listen)?,
        data_dir,
        database,
        domains: server
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        regions: server.regions,
        registry: server
            .registry
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| resolve(base, r)),
        registry_cache_ttl: duration("server.registry_cache_ttl", &server.registry_cache_ttl)?,
        drain_timeout: duration("server.drain_timeout", &server.drain_timeout)?,
        per_core_runtimes: server.per_core_runtimes,
        tls: match raw.tls {
            Some(tls) => TlsSource::Files {
                cert: resolve(base, &tls.cert),
                key: resolve(base, &tls.key),
            },
            None => TlsSource::Development,
        },
        connect_timeout: duration("proxy.connect_timeout", &raw.proxy.connect_timeout)?,
        response_timeout: duration("proxy.response_timeout", &raw.proxy.response_timeout)?,
        backend_roots: match raw.proxy.backend_ca_file.as_deref() {
            None | Some("") => Vec::new(),
            Some(file) => backend_roots(&resolve(base, file))?,
        },
        max_header_size: size("limits.max_header_size", &raw.limits.max_header_size)?,
        header_read_timeout: duration(
            "limits.header_read_timeout",
            &raw.limits.header_read_timeout,
        )?,
        max_connections: match raw.limits.max_connections {
            0 => bail!("limits.max_connections: must be 1 or more"),
            n => n,
        },
        idle_timeout,
        max_request_size: size("limits.max_request_size", &raw.limits.max_request_size)? as u64,
        max_file_size: size("limits.max_file_size", &raw.limits.max_file_size)? as u64,
        greylist: greylist(&raw.greylist)?,
        static_dir: raw
            .static_files
            .dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| resolve(base, d)),
        websocket_ping_interval: Some(duration(
            "websocket.ping_interval",
            &raw.websocket.ping_interval,
        )?)
        .filter(|d| !d.is_zero()),
        log_format: match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("log.format: \"{other}\" is not text or json"),
        },
        log_level: raw.log.level,
        identity: identity(&raw.identity)?,
        notifications: notifications::validate(&raw.notifications, idle_timeout)?,
        cluster,
        demo: raw.demo.enabled,
    })
}

/// The certificate authorities of `proxy.backend_ca_file`, each checked to be usable as
/// one: a file the gateway would silently ignore is refused here instead.
fn backend_roots(file: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = portico_gateway::tls::load_certs(file)
        .map_err(|e| anyhow!("proxy.backend_ca_file: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    for (n, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            anyhow!(
                "proxy.backend_ca_file: certificate {} of {} is not usable as a CA: {e}",
                n + 1,
                file.display()
            )
        })?;
    }
    Ok(certs)
}

fn greylist(raw: &RawGreylist) -> Result<GreylistConfig> {
    let share = |key: &str, value: f64| -> Result<f64> {
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            bail!("greylist.{key}: {value} is not a share between 0.0 and 1.0")
        }
    };
    Ok(GreylistConfig {
        mode: match raw.mode.as_str() {
            "report" => GreylistMode::Report,
            "enforce" => GreylistMode::Enforce,
            other => bail!("greylist.mode: \"{other}\" is not report or enforce"),
        },
        slow_response: duration("greylist.slow_response", &raw.slow_response)?,
        duration: duration("greylist.duration", &raw.duration)?,
        load_threshold: share("load_threshold", raw.load_threshold)?,
        admit_below: share("admit_below", raw.admit_below)?,
    })
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() || base == Path::new(".") {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Makes the path of a relative `sqlite://` URL relative to the configuration's folder.
fn resolve_database(base: &Path, url: &str) -> Result<String> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        if path.is_empty() {
            bail!("\"{url}\" names no database file");
        }
        let path = resolve(base, path);
        return Ok(match query {
            Some(q) => format!("sqlite://{}?{q}", path.display()),
            None => format!("sqlite://{}", path.display()),
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_string());
    }
    bail!(
        "\"{}\" is neither sqlite://PATH nor postgres://…",
        mask_password(url)
    )
}

/// `100ms`, `5s`, `5m`, `12h`, `1d`.
fn identity(raw: &RawIdentity) -> Result<portico_identity::IdentityConfig> {
    let positive = |key: &str, value: &str| -> Result<Duration> {
        let d = duration(key, value)?;
        if d.is_zero() {
            bail!("{key}: must be longer than 0s");
        }
        Ok(d)
    };
    Ok(portico_identity::IdentityConfig {
        session_inactive: positive(
            "identity.session_inactive_timeout",
            &raw.session_inactive_timeout,
        )?,
        session_absolute: positive("identity.session_max_lifetime", &raw.session_max_lifetime)?,
        access_token_lifetime: positive(
            "identity.access_token_lifetime",
            &raw.access_token_lifetime,
        )?,
        refresh_token_lifetime: positive(
            "identity.refresh_token_lifetime",
            &raw.refresh_token_lifetime,
        )?,
        key_rotation: positive("identity.key_rotation", &raw.key_rotation)?,
        ..portico_identity::IdentityConfig::default()
    })
}

pub fn duration(key: &str, value: &str) -> Result<Duration> {
    const UNITS: [(&str, u64); 5] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    quantity(key, value, &UNITS, "a duration like 5s, 10m or 12h").map(Duration::from_millis)
}

/// `16kB`, `150MB`, `1GB` (powers of 1000, as the seed writes them), `64KiB`, `1MiB`, or bytes.
pub fn size(key: &str, value: &str) -> Result<usize> {
    const UNITS: [(&str, u64); 9] = [
        ("", 1),
        ("B", 1),
        ("kB", 1000),
        ("KB", 1000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
    ];
    let bytes = quantity(key, value, &UNITS, "a size like 16kB or 150MB")?;
    usize::try_from(bytes).map_err(|_| anyhow!("{key}: \"{value}\" is too large"))
}

/// A whole number followed by one of `units`, in the units' common base.
fn quantity(key: &str, value: &str, units: &[(&str, u64)], what: &str) -> Result<u64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let factor = units
        .iter()
        .find(|(name, _)| *name == unit.trim())
        .map(|(_, f)| *f);
    match (number.parse::<u64>(), factor) {
        (Ok(n), Some(factor)) => n
            .checked_mul(factor)
            .ok_or_else(|| anyhow!("{key}: \"{value}\" is too large")),
        _ => bail!("{key}: \"{value}\" is not {what}"),
    }
}

#[cfg(test)]
mod tests;
