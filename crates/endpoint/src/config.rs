//! The agent's configuration file (TOML), resolved against the process environment.
//!
//! ```toml
//! role = "device"                          # or "service"
//! backend = "https://rs.example.com"
//! credentials = "/etc/portico/endpoint-credentials.toml"
//! proxy = "http://user:secret@proxy.corp:3128"   # optional; "direct" ignores HTTPS_PROXY
//! ca_file = "/etc/portico/backend-ca.pem"        # optional, trusted besides the system roots
//! keep_alive_secs = 20
//! dead_after_secs = 45
//! allow = ["plc-7.factory.local:502", "*.cell-3.local:*"]   # Device Endpoint only
//! token_url = "https://connectivity.eu1.vpnrts.example.com/uaa/oauth/token"  # optional
//! api = "https://gateway.eu1.example.com"                                   # optional
//! listen_address = "127.0.0.1"                  # where local listeners bind
//! rotate_after_days = 30                        # rotate credentials this old; 0: never
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::allow::AllowList;
use crate::hosts;
use crate::no_proxy::NoProxy;

pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(20);
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(45);
/// Credentials older than this are rotated at the next (re)connect.
pub const DEFAULT_ROTATE_AFTER_DAYS: u64 = 30;
/// A limit that keeps the age in a `Duration` without overflow (about 27 years).
const MAX_ROTATE_AFTER_DAYS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration is not valid TOML: {0}")]
    Syntax(String),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Which side of a Remote Services connection this endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointRole {
    /// In the factory network, next to the machines; dials the targets.
    Device,
    /// In the service network, on the engineer's side; opens the local listeners.
    Service,
}

impl EndpointRole {
    /// The role this endpoint declares in the tunnel's hello.
    pub fn tunnel_role(self) -> portico_tunnel::Role {
        match self {
            EndpointRole::Device => portico_tunnel::Role::Device,
            EndpointRole::Service => portico_tunnel::Role::Service,
        }
    }
}

/// The backend the agent connects to: always `https`, the host name checked against its
/// certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendUrl {
    host: String,
    port: u16,
    base_path: String,
}

impl BackendUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if url.scheme() != "https" {
            return Err(format!(
                "`{text}` must start with https:// (the tunnel always runs over TLS)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials belong in the credentials file, not in the URL".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}` must not have a query or fragment"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("`{text}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let base_path = url.path().trim_end_matches('/').to_string();
        Ok(BackendUrl {
            host,
            port,
            base_path,
        })
    }

    /// The host name the certificate must be valid for (IPv6 without brackets).
    /// A URL on another host of the same deployment: same port, the given host and path.
    pub(crate) fn sibling(&self, host: &str, base_path: String) -> Self {
        BackendUrl {
            host: host.to_string(),
            port: self.port,
            base_path,
        }
    }

    /// The path below the host, without a trailing slash (empty for the root).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` as written in a `CONNECT` request and a `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The path and query of one of the backend's HTTP paths, e.g. `/uaa/oauth/token`.
    pub fn path_url(&self, path: &str) -> String {
        format!("{}{}", self.base_path, path)
    }

    /// The WebSocket URL of one of the backend's tunnel paths, e.g. `/ccf/`.
    pub fn websocket_url(&self, path: &str) -> String {
        format!("wss://{}{}{}", self.authority(), self.base_path, path)
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.base_path)
    }
}

/// An HTTP proxy reached with `CONNECT`, with optional Basic credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    credentials: Option<ProxyCredentials>,
}

/// The user and password for the proxy's Basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyCredentials")
            .field("user", &self.user)
            .field("password", &"********")
            .finish()
    }
}

impl ProxyUrl {
    /// `http://[user:password@]host[:port]`; user and password may be percent-encoded.
    /// A proxy without a port is on 80, the `http` default.
    pub fn parse(text: &str) -> Result<Self, String> {
        // The URL itself is left out of messages: it may hold the password.
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| format!("not a proxy URL: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "the proxy scheme must be http:// (the agent speaks plain HTTP CONNECT to the \
                 proxy), not {}://",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .ok_or("the proxy URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let decode = |s: &str| {
            percent_decode(s).ok_or("the proxy user or password is not valid percent-encoded UTF-8")
        };
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some(ProxyCredentials {
                user: decode(url.username())?,
                password: decode(url.password().unwrap_or(""))?,
            })
        };
        Ok(ProxyUrl {
            host,
            port,
            credentials,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn credentials(&self) -> Option<&ProxyCredentials> {
        self.credentials.as_ref()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.credentials {
            Some(c) => write!(f, "http://{}:********@{}:{}", c.user, host, self.port),
            None => write!(f, "http://{}:{}", host, self.port),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The proxy variables of the process environment, read once so that loading stays testable.
#[derive(Clone, Debug, Default)]
pub struct ProxyEnvironment {
    /// `https_proxy`, else `HTTPS_PROXY`.
    pub https_proxy: Option<String>,
    /// `no_proxy`, else `NO_PROXY`.
    pub no_proxy: Option<String>,
}

impl ProxyEnvironment {
    pub fn from_process() -> Self {
        let var = |lower: &str, upper: &str| {
            std::env::var(lower)
                .ok()
                .or_else(|| std::env::var(upper).ok())
                .filter(|v| !v.trim().is_empty())
        };
        ProxyEnvironment {
            https_proxy: var("https_proxy", "HTTPS_PROXY"),
            no_proxy: var("no_proxy", "NO_PROXY"),
        }
    }
}

/// Where the proxy setting came from; shown by the agent so an operator can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxySource {
    ConfigFile,
    Environment,
    /// `proxy = "direct"`, no variable set, or `NO_PROXY` covers the backend.
    None,
}

/// The agent's settings after loading and resolving against the environment.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub role: EndpointRole,
    pub backend: BackendUrl,
    pub credentials_file: PathBuf,
    pub proxy: Option<ProxyUrl>,
    pub proxy_source: ProxySource,
    pub ca_file: Option<PathBuf>,
    pub keep_alive: Duration,
    pub dead_after: Duration,
    /// A Device Endpoint's own limit on what it dials; `None` leaves it to the backend.
    pub allow: Option<AllowList>,
    /// The token endpoint (`token_url`, else derived from `backend`, see [`crate::hosts`]).
    pub token_url: BackendUrl,
    /// The gateway API host (`api`, else derived from `backend`).
    pub api: BackendUrl,
    /// Where local listeners bind (`listen_address`, default `127.0.0.1`).
    pub listen_address: IpAddr,
    /// Credentials (the file's age) older than this are rotated at the next (re)connect
    /// (`rotate_after_days`, default 30); `None` (`0`) never rotates on its own.
    pub rotate_after: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    role: Option<EndpointRole>,
    backend: Option<String>,
    credentials: Option<PathBuf>,
    proxy: Option<String>,
    ca_file: Option<PathBuf>,
    keep_alive_secs: Option<u64>,
    dead_after_secs: Option<u64>,
    allow: Option<Vec<String>>,
    token_url: Option<String>,
    api: Option<String>,
    listen_address: Option<String>,
    rotate_after_days: Option<u64>,
}

impl EndpointConfig {
    /// Reads the file; the environment supplies a proxy when the file names none.
    pub fn load(path: &Path, env: &ProxyEnvironment) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, env)?;
        // Relative paths in the file are relative to the file, not to the working directory.
        let dir = path.parent().unwrap_or(Path::new("."));
        config.credentials_file = dir.join(&config.credentials_file);
        config.ca_file = config.ca_file.map(|f| dir.join(f));
        Ok(config)
    }

    pub fn from_toml(text: &str, env: &ProxyEnvironment) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message may quote the offending line, which may hold the proxy password.
            ConfigError::Syntax(e.message().to_string())
        })?;
        let role = raw
            .role
            .ok_or_else(|| invalid("role", "missing; write \"device\" or \"service\""))?;
        let backend = raw
            .backend
            .ok_or_else(|| invalid("backend", "missing; the https:// URL of the backend"))?;
        let backend = BackendUrl::parse(&backend).map_err(|r| invalid("backend", r))?;
        let credentials_file = raw
            .credentials
            .ok_or_else(|| invalid("credentials", "missing; the path of the credentials file"))?;
        let keep_alive = seconds("keep_alive_secs", raw.keep_alive_secs, DEFAULT_KEEP_ALIVE)?;
        let dead_after = seconds("dead_after_secs", raw.dead_after_secs, DEFAULT_DEAD_AFTER)?;
        if dead_after <= keep_alive {
            return Err(invalid(
                "dead_after_secs",
                format!(
                    "{} s must be longer than keep_alive_secs ({} s), or a quiet tunnel is \
                     declared dead before its first ping",
                    dead_after.as_secs(),
                    keep_alive.as_secs()
                ),
            ));
        }
        let allow = match raw.allow {
            None => None,
            Some(_) if role == EndpointRole::Service => {
                return Err(invalid(
                    "allow",
                    "only a Device Endpoint dials targets; a Service Endpoint has no allow-list",
                ))
            }
            Some(patterns) => Some(AllowList::parse(&patterns).map_err(|r| invalid("allow", r))?),
        };
        let (proxy, proxy_source) = resolve_proxy(raw.proxy.as_deref(), env, &backend)?;
        let token_url = match raw.token_url {
            Some(text) => BackendUrl::parse(&text).map_err(|r| invalid("token_url", r))?,
            None => hosts::token_url(&backend),
        };
        let api = match raw.api {
            Some(text) => BackendUrl::parse(&text).map_err(|r| invalid("api", r))?,
            None => hosts::api_url(&backend),
        };
        let listen_address = match raw.listen_address {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(text) => text.trim().parse().map_err(|_| {
                invalid(
                    "listen_address",
                    format!("`{text}` is not an IP address (e.g. 127.0.0.1 or ::1)"),
                )
            })?,
        };
        let rotate_after = match raw.rotate_after_days.unwrap_or(DEFAULT_ROTATE_AFTER_DAYS) {
            0 => None,
            days if days > MAX_ROTATE_AFTER_DAYS => {
                return Err(invalid(
                    "rotate_after_days",
                    format!("{days} days is more than {MAX_ROTATE_AFTER_DAYS}; write 0 for never"),
                ))
            }
            days => Some(Duration::from_secs(days * 24 * 3600)),
        };
        Ok(EndpointConfig {
            rotate_after,
            token_url,
            api,
            listen_address,
            role,
            backend,
            credentials_file,
            proxy,
            proxy_source,
            ca_file: raw.ca_file,
            keep_alive,
            dead_after,
            allow,
        })
    }
}

impl EndpointConfig {
    /// The tunnel settings with this file's keep-alive and dead-after; the rest default.
    pub fn tunnel_config(&self) -> portico_tunnel::TunnelConfig {
        portico_tunnel::TunnelConfig {
            keep_alive: self.keep_alive,
            dead_after: self.dead_after,
            ..portico_tunnel::TunnelConfig::default()
        }
    }
}

fn seconds(
    key: &'static str,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(key, "must be at least 1 second")),
        Some(s) if s > 3600 => Err(invalid(key, format!("{s} s is more than an hour"))),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

/// The file's `proxy` wins; without it `HTTPS_PROXY` applies unless `NO_PROXY` covers the
/// backend. `NO_PROXY` is not applied to a proxy the file names: that was written on purpose.
fn resolve_proxy(
    file: Option<&str>,
    env: &ProxyEnvironment,
    backend: &BackendUrl,
) -> Result<(Option<ProxyUrl>, ProxySource), ConfigError> {
    match file.map(str::trim) {
        Some("direct") => Ok((None, ProxySource::None)),
        Some(text) => {
            let proxy = ProxyUrl::parse(text).map_err(|r| invalid("proxy", r))?;
            Ok((Some(proxy), ProxySource::ConfigFile))
        }
        None => {
            let Some(text) = env.https_proxy.as_deref() else {
                return Ok((None, ProxySource::None));
            };
            let no_proxy = NoProxy::parse(env.no_proxy.as_deref().unwrap_or(""));
            if no_proxy.bypasses(backend.host(), backend.port()) {
                return Ok((None, ProxySource::None));
            }
            let proxy = ProxyUrl::parse(text).map_err(|r| invalid("HTTPS_PROXY", r))?;
            Ok((Some(proxy), ProxySource::Environment))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        role = "device"
        backend = "https://rs.example.com"
        credentials = "creds.toml"
    "#;

    fn no_env() -> ProxyEnvironment {
        ProxyEnvironment::default()
    }

    fn err(text: &str) -> String {
        EndpointConfig::from_toml(text, &no_env())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_file_gets_the_defaults() {
        let c = EndpointConfig::from_toml(MINIMAL, &no_env()).unwrap();
        assert_eq!(c.role, EndpointRole::Device);
        assert_eq!(c.backend.host(), "rs.example.com");
        assert_eq!(c.backend.port(), 443);
        assert_eq!(
            c.backend.websocket_url("/ccf/"),
            "wss://rs.example.com:443/ccf/"
        );
        assert_eq!(c.keep_alive, Duration::from_secs(20));
        assert_eq!(c.dead_after, Duration::from_secs(45));
        assert!(c.proxy.is_none() && c.allow.is_none() && c.ca_file.is_none());
    }

    #[test]
    fn rotation_age_defaults_to_30_days_and_0_is_never() {
        let c = EndpointConfig::from_toml(MINIMAL, &ProxyEnvironment::default()).unwrap();
        assert_eq!(c.rotate_after, Some(Duration::from_secs(30 * 86_400)));
        let with = |line: &str| {
            EndpointConfig::from_toml(
                &format!("{MINIMAL}\n{line}\n"),
                &ProxyEnvironment::default(),
            )
        };
        assert_eq!(with("rotate_after_days = 0").unwrap().rotate_after, None);
        assert_eq!(
            with("rotate_after_days = 7").unwrap().rotate_after,
            Some(Duration::from_secs(7 * 86_400))
        );
        assert!(
            err(&format!("{MINIMAL}\nrotate_after_days = 99999\n")).contains("`rotate_after_days`")
        );
        assert!(with("rotate_after_days = -1").is_err());
    }

    #[test]
    fn hosts_and_listen_address_default_and_override() {
        let c = EndpointConfig::from_toml(
            "role = \"service\"\nbackend = \"https://wss.eu1.vpnrts.example.com\"\n\
             credentials = \"c.toml\"\n",
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.token_url.host(), "connectivity.eu1.vpnrts.example.com");
        assert_eq!(c.api.host(), "gateway.eu1.example.com");
        assert_eq!(c.listen_address.to_string(), "127.0.0.1");
        let c = EndpointConfig::from_toml(
            &format!(
                "{MINIMAL}\ntoken_url = \"https://id.corp:9443/oauth/token\"\n\
                 api = \"https://api.corp\"\nlisten_address = \"::1\"\n"
            ),
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.token_url.to_string(), "https://id.corp:9443/oauth/token");
        assert_eq!(c.api.to_string(), "https://api.corp:443");
        assert_eq!(c.listen_address.to_string(), "::1");
        assert!(err(&format!("{MINIMAL}\nlisten_address = \"localhost\"\n"))
            .contains("`listen_address`"));
        assert!(err(&format!("{MINIMAL}\napi = \"http://api.corp\"\n")).contains("`api`"));
        assert!(err(&format!("{MINIMAL}\ntoken_url = \"nope\"\n")).contains("`token_url`"));
    }

    #[test]
    fn full_file() {
        let c = EndpointConfig::from_toml(
            r#"
            role = "device"
            backend = "https://[fd00::1]:8443/portico/"
            credentials = "/etc/portico/creds.toml"
            proxy = "http://svc%40corp:p%3Ass@proxy.corp:3128"
            ca_file = "ca.pem"
            keep_alive_secs = 5
            dead_after_secs = 12
            allow = ["plc:502"]
            "#,
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.backend.authority(), "[fd00::1]:8443");
        assert_eq!(
            c.backend.websocket_url("/mts/"),
            "wss://[fd00::1]:8443/portico/mts/"
        );
        let proxy = c.proxy.as_ref().unwrap();
        assert_eq!((proxy.host(), proxy.port()), ("proxy.corp", 3128));
        let creds = proxy.credentials().unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("svc@corp", "p:ss")
        );
        assert_eq!(c.proxy_source, ProxySource::ConfigFile);
        assert!(c.allow.as_ref().unwrap().allows("plc", 502));
        assert_eq!(c.keep_alive, Duration::from_secs(5));
        let tunnel = c.tunnel_config();
        assert_eq!(tunnel.keep_alive, Duration::from_secs(5));
        assert_eq!(tunnel.dead_after, Duration::from_secs(12));
        assert_eq!(c.role.tunnel_role(), portico_tunnel::Role::Device);
    }

    #[test]
    fn secrets_are_masked_in_debug_and_display() {
        let text = MINIMAL.to_string() + "proxy = \"http://u:hunter2@p:3128\"\n";
        let c = EndpointConfig::from_toml(&text, &no_env()).unwrap();
        let shown = format!("{c:?} {}", c.proxy.as_ref().unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
        // A syntax error elsewhere in the file must not echo the password either.
        let broken = format!("{text}\nkeep_alive_secs = ");
        assert!(!err(&broken).contains("hunter2"));
        let bad_scheme = MINIMAL.to_string() + "proxy = \"https://u:hunter2@p:3128\"\n";
        let msg = err(&bad_scheme);
        assert!(msg.contains("`proxy`") && !msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn errors_name_the_key_and_the_reason() {
        let cases = [
            ("backend = \"https://a\"\ncredentials = \"c\"", "`role`"),
            ("role = \"device\"\ncredentials = \"c\"", "`backend`"),
            (
                "role = \"device\"\nbackend = \"https://a\"",
                "`credentials`",
            ),
            (
                "role = \"device\"\nbackend = \"http://a\"\ncredentials = \"c\"",
                "https://",
            ),
            (
                "role = \"device\"\nbackend = \"https://u:p@a\"\ncredentials = \"c\"",
                "credentials file",
            ),
        ];
        for (text, expected) in cases {
            let msg = err(text);
            assert!(msg.contains(expected), "{text}: {msg}");
        }
        let msg = err(&(MINIMAL.to_string() + "dead_after_secs = 10\n"));
        assert!(
            msg.contains("`dead_after_secs`") && msg.contains("longer"),
            "{msg}"
        );
        let msg = err(&(MINIMAL.to_string() + "keep_alive_secs = 0\n"));
        assert!(msg.contains("`keep_alive_secs`"), "{msg}");
        let msg = err(&(MINIMAL.to_string() + "allow = [\"plc\"]\n"));
        assert!(msg.contains("`allow`") && msg.contains("`plc`"), "{msg}");
        let service = MINIMAL.replace("device", "service") + "allow = [\"plc:22\"]\n";
        assert!(err(&service).contains("Service Endpoint"));
        assert!(err(&(MINIMAL.to_string() + "colour = 1\n")).contains("colour"));
        assert!(err("role = \"robot\"").contains("robot"));
    }

    #[test]
    fn environment_proxy_applies_unless_no_proxy_covers_the_backend() {
        let env = ProxyEnvironment {
            https_proxy: Some("proxy.corp:8080".into()),
            no_proxy: None,
        };
        let c = EndpointConfig::from_toml(MINIMAL, &env).unwrap();
        assert_eq!(c.proxy.as_ref().unwrap().host(), "proxy.corp");
        assert_eq!(c.proxy.as_ref().unwrap().port(), 8080);
        assert_eq!(c.proxy_source, ProxySource::Environment);

        for no_proxy in [
            "example.com",
            ".example.com",
            "*",
            "other,rs.example.com:443",
        ] {
            let env = ProxyEnvironment {
                no_proxy: Some(no_proxy.into()),
                ..env.clone()
            };
            let c = EndpointConfig::from_toml(MINIMAL, &env).unwrap();
            assert!(c.proxy.is_none(), "{no_proxy}");
            assert_eq!(c.proxy_source, ProxySource::None);
        }
        let env_other = ProxyEnvironment {
            no_proxy: Some("example.org,rs.example.com:8443".into()),
            ..env.clone()
        };
        assert!(EndpointConfig::from_toml(MINIMAL, &env_other)
            .unwrap()
            .proxy
            .is_some());

        // The file wins over the environment, and "direct" turns the proxy off.
        let file = MINIMAL.to_string() + "proxy = \"http://filed:3128\"\n";
        let c = EndpointConfig::from_toml(&file, &env).unwrap();
        assert_eq!(c.proxy.unwrap().host(), "filed");
        let direct = MINIMAL.to_string() + "proxy = \"direct\"\n";
        assert!(EndpointConfig::from_toml(&direct, &env)
            .unwrap()
            .proxy
            .is_none());
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("endpoint.toml");
        std::fs::write(&path, MINIMAL.to_string() + "ca_file = \"ca.pem\"\n").unwrap();
        let c = EndpointConfig::load(&path, &no_env()).unwrap();
        assert_eq!(c.credentials_file, dir.path().join("creds.toml"));
        assert_eq!(c.ca_file, Some(dir.path().join("ca.pem")));
        let missing = EndpointConfig::load(&dir.path().join("nope.toml"), &no_env());
        assert!(missing.unwrap_err().to_string().contains("nope.toml"));
    }
}
