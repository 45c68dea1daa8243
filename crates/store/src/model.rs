//! The registry's data model (SPEC GW-8) and the rules every entry obeys, whichever
//! way it arrives (registry file, admin API, built-in). Validation lives here, once,
//! so that the file loader and the API refuse the same things with the same words.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a registry entry came from. A file reload replaces only `File` entries; the
/// API may change only `Api` entries; `Builtin` entries are written by `portico serve`
/// itself (core services and the demo) and are replaced at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Builtin,
    File,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Builtin => "builtin",
            Origin::File => "file",
            Origin::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Origin> {
        match s {
            "builtin" => Some(Origin::Builtin),
            "file" => Some(Origin::File),
            "api" => Some(Origin::Api),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the gateway authenticates requests to a registration. Required in every
/// registration, with no default, so that its meaning can never change silently.
/// Web apps take `session` or `none`, APIs `bearer` or `none` ([`WebApp::validate`],
/// [`Api::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// Every request passes, as the client sent it.
    None,
    /// A web app for signed-in users: a Portico session is required (ID-1, ID-2).
    Session,
    /// An API for token holders: `Authorization: Bearer` with a token Portico issued (ID-3, ID-4).
    Bearer,
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Session => "session",
            Auth::Bearer => "bearer",
        }
    }

    pub fn parse(s: &str) -> Result<Auth, String> {
        match s {
            "none" => Ok(Auth::None),
            "session" => Ok(Auth::Session),
            "bearer" => Ok(Auth::Bearer),
            other => Err(format!(
                "unknown auth \"{other}\"; expected \"session\" (web apps), \"bearer\" (APIs) or \"none\""
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebApp {
    pub name: String,
    /// `None` for core apps.
    pub provider: Option<String>,
    /// `http://…`, `https://…`, or `internal:NAME` for an in-process service.
    pub backend: String,
    /// Subscribed tenants.
    pub tenants: Vec<String>,
    /// Cache-Control added when the backend sends none (GW-17). `None` or empty: built-in default.
    pub cache_control: Option<String>,
    /// Ant patterns of the paths that accept a WebSocket upgrade (GW-21).
    pub websockets: Vec<String>,
    pub auth: Auth,
    /// Scopes a signed-in user must all hold; only with `auth = "session"`.
    #[serde(default)]
    pub scopes: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Ant-style pattern on the endpoint path (GW-9).
    pub pattern: String,
    /// Allowed methods, upper case. Empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    pub name: String,
    pub provider: Option<String>,
    /// Major version, the `v{major}` path segment.
    pub version: u32,
    pub backend: String,
    /// In registration order; an API without routes routes nothing (GW-9).
    pub routes: Vec<Route>,
    pub tenants: Vec<String>,
    pub auth: Auth,
    /// Scopes a caller's token (or session) must all hold; only with `auth = "bearer"`.
    #[serde(default)]
    pub scopes: Vec<String>,
    pub origin: Origin,
}

/// The whole registry, as the gateway routes from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub tenants: Vec<Tenant>,
    pub webapps: Vec<WebApp>,
    pub apis: Vec<Api>,
}

/// Identifies a web app: its name and optional provider, written `name[-provider]`
/// as in the host name (GW-1).
pub fn app_key(name: &str, provider: Option<&str>) -> String {
    match provider {
        Some(p) => format!("{name}-{p}"),
        None => name.to_string(),
    }
}

/// Splits `name[-provider]` back into its parts.
pub fn split_app_key(key: &str) -> Option<(&str, Option<&str>)> {
    let mut parts = key.split('-');
    let name = parts.next()?;
    let provider = parts.next();
    if parts.next().is_some() || !is_name(name) || provider.is_some_and(|p| !is_name(p)) {
        return None;
    }
    Some((name, provider))
}

impl WebApp {
    pub fn key(&self) -> String {
        app_key(&self.name, self.provider.as_deref())
    }
}

impl Api {
    /// `name[-provider]/v{version}`, as in the API path (GW-2).
    pub fn key(&self) -> String {
        format!(
            "{}/v{}",
            app_key(&self.name, self.provider.as_deref()),
            self.version
        )
    }
}

/// Tenant, app and provider names are `[a-z0-9]+` (GW-1): no hyphen, so a host's
/// first label splits unambiguously.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A problem with one field of one entry; `field` is the key as written in the
/// registry file and in the API's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

fn check_name(field: &'static str, s: &str) -> Result<(), Invalid> {
    if is_name(s) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "\"{s}\" is not a valid name: use 1 to 63 lower-case letters and digits, no hyphen"
            ),
        ))
    }
}

/// Backends are `http://host[:port][/path]`, `https://…`, or `internal:NAME`.
pub fn check_backend(s: &str, origin: Origin) -> Result<(), Invalid> {
    if let Some(name) = s.strip_prefix("internal:") {
        if origin != Origin::Builtin {
            return Err(invalid(
                "backend",
                format!("\"{s}\": internal: backends are reserved for Portico's own services"),
            ));
        }
        return check_name("backend", name);
    }
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                "backend",
                format!("\"{s}\" must start with http://, https:// or internal:"),
            )
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid(
            "backend",
            format!("\"{s}\" needs a host (and no user info)"),
        ));
    }
    if s.contains(['?', '#', ' ']) {
        return Err(invalid(
            "backend",
            format!("\"{s}\" must not have a query, a fragment or spaces"),
        ));
    }
    // The gateway parses backends with this parser; what it refuses must not be stored.
    if s.parse::<http::Uri>().is_err() {
        return Err(invalid("backend", format!("\"{s}\" is not a valid URL")));
    }
    Ok(())
}

fn check_pattern(field: &'static str, p: &str) -> Result<(), Invalid> {
    if !p.starts_with('/') {
        return Err(invalid(field, format!("pattern \"{p}\" must start with /")));
    }
    if p.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(invalid(
            field,
            format!("pattern \"{p}\" has spaces or non-ASCII characters"),
        ));
    }
    Ok(())
}

fn check_method(m: &str) -> Result<(), Invalid> {
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid(
            "methods",
            format!("\"{m}\" is not an HTTP method in upper case, e.g. GET"),
        ))
    }
}

/// A scope is an RFC 6749 §3.3 scope-token: visible ASCII except `"` and `\\`.
fn is_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Scopes are checked only where someone is signed in: on `auth = "none"` they would
/// promise a protection that nothing enforces.
fn check_scopes(scopes: &[String], auth: Auth) -> Result<(), Invalid> {
    if let Some(bad) = scopes.iter().find(|s| !is_scope(s)) {
        return Err(invalid(
            "scopes",
            format!("\"{bad}\" is not a scope: use 1 to 128 visible ASCII characters, no spaces, quotes or backslashes"),
        ));
    }
    if !scopes.is_empty() && auth == Auth::None {
        return Err(invalid(
            "scopes",
            "scopes need auth = \"session\" (web apps) or \"bearer\" (APIs): with auth = \"none\" no caller is known whose scopes could be checked",
        ));
    }
    Ok(())
}

fn check_tenants(tenants: &[String]) -> Result<(), Invalid> {
    for t in tenants {
        check_name("tenants", t)?;
    }
    Ok(())
}

/// The platform operator's tenant: it has users (the operators) but is no registry
/// tenant, so that no app of its own can receive an operator's session.
pub const OPERATORS_TENANT: &str = "management";

impl Tenant {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name("name", &self.name)?;
        if self.name == OPERATORS_TENANT {
            return Err(invalid(
                "name",
                format!("\"{OPERATORS_TENANT}\" is reserved for Portico's operators"),
            ));
        }
        Ok(())
    }
}

impl WebApp {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name("name", &self.name)?;
        if let Some(p) = &self.provider {
            check_name("provider", p)?;
        }
        check_backend(&self.backend, self.origin)?;
        check_tenants(&self.tenants)?;
        if let Some(cc) = &self.cache_control {
            if cc.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(invalid(
                    "cache_control",
                    "must be a single-line header value",
                ));
            }
        }
        for w in &self.websockets {
            check_pattern("websockets", w)?;
        }
        if self.auth == Auth::Bearer {
            return Err(invalid(
                "auth",
                "\"bearer\" is for APIs; a web app takes \"session\" (users sign in) or \"none\" (public)",
            ));
        }
        check_scopes(&self.scopes, self.auth)
    }
}

impl Api {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name("name", &self.name)?;
        if let Some(p) = &self.provider {
            check_name("provider", p)?;
        }
        if self.version == 0 || self.version > 999_999_999 {
            return Err(invalid(
                "version",
                "major version must be from 1 to 999999999 (the v{major} path segment has at most 9 digits)",
            ));
        }
        check_backend(&self.backend, self.origin)?;
        check_tenants(&self.tenants)?;
        for r in &self.routes {
            check_pattern("routes", &r.pattern)?;
            for m in &r.methods {
                check_method(m)?;
            }
        }
        if self.auth == Auth::Session {
            return Err(invalid(
                "auth",
                "\"session\" is for web apps; an API takes \"bearer\" (callers present a token) or \"none\" (public)",
            ));
        }
        check_scopes(&self.scopes, self.auth)
    }
}

/// The kind of a registry entry, as named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Tenant,
    WebApp,
    Api,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Tenant => "tenant",
            EntryKind::WebApp => "webapp",
            EntryKind::Api => "api",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem found by [`Registry::check`]: which entry (kind, position in its list, key)
/// and, when it is about one field, which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryInvalid {
    pub kind: EntryKind,
    /// Position of the entry in `Registry::tenants`, `webapps` or `apis`.
    pub index: usize,
    /// The entry's key: tenant name, `WebApp::key()` or `Api::key()`.
    pub key: String,
    pub field: Option<&'static str>,
    pub reason: String,
}

impl fmt::Display for RegistryInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(
                f,
                "{} \"{}\": {field}: {}",
                self.kind, self.key, self.reason
            ),
            None => write!(f, "{} \"{}\" {}", self.kind, self.key, self.reason),
        }
    }
}

impl std::error::Error for RegistryInvalid {}

impl Registry {
    /// Checks every entry and the references between them: subscribed tenants must
    /// exist, and no key may appear twice.
    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|e| e.to_string())
    }

    /// [`Registry::validate`] with a structured error, for callers that point at the
    /// entry (the registry file loader gives its line).
    pub fn check(&self) -> Result<(), RegistryInvalid> {
        use std::collections::HashSet;
        let entry_err = |kind, index, key: String, e: Invalid| RegistryInvalid {
            kind,
            index,
            key,
            field: Some(e.field),
            reason: e.reason,
        };
        let twice = |kind, index, key: String| RegistryInvalid {
            kind,
            index,
            key,
            field: None,
            reason: "is registered twice".to_string(),
        };
        let unknown_tenant = |kind, index, key: String, t: &str| RegistryInvalid {
            kind,
            index,
            key,
            field: Some("tenants"),
            reason: format!("tenant \"{t}\" is not registered"),
        };
        let mut tenants = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            t.validate()
                .map_err(|e| entry_err(EntryKind::Tenant, i, t.name.clone(), e))?;
            if !tenants.insert(t.name.as_str()) {
                return Err(twice(EntryKind::Tenant, i, t.name.clone()));
            }
        }
        let mut keys = HashSet::new();
        for (i, w) in self.webapps.iter().enumerate() {
            w.validate()
                .map_err(|e| entry_err(EntryKind::WebApp, i, w.key(), e))?;
            if !keys.insert(w.key()) {
                return Err(twice(EntryKind::WebApp, i, w.key()));
            }
            if let Some(t) = w.tenants.iter().find(|t| !tenants.contains(t.as_str())) {
                return Err(unknown_tenant(EntryKind::WebApp, i, w.key(), t));
            }
        }
        let mut keys = HashSet::new();
        for (i, a) in self.apis.iter().enumerate() {
            a.validate()
                .map_err(|e| entry_err(EntryKind::Api, i, a.key(), e))?;
            if !keys.insert(a.key()) {
                return Err(twice(EntryKind::Api, i, a.key()));
            }
            if let Some(t) = a.tenants.iter().find(|t| !tenants.contains(t.as_str())) {
                return Err(unknown_tenant(EntryKind::Api, i, a.key(), t));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_tenant_is_not_a_registry_tenant() {
        let tenant = |name: &str| Tenant {
            name: name.into(),
            origin: Origin::Api,
        };
        assert!(tenant("acme").validate().is_ok());
        let refused = tenant(OPERATORS_TENANT).validate().unwrap_err();
        assert!(refused.to_string().contains("reserved"), "{refused}");
    }

    #[test]
    fn names_are_lower_case_alphanumerics() {
        assert!(is_name("abc123"));
        assert!(!is_name("Abc"));
        assert!(!is_name("a-b"));
        assert!(!is_name(""));
    }

    #[test]
    fn app_keys_split_into_name_and_provider() {
        assert_eq!(split_app_key("iot-xyz"), Some(("iot", Some("xyz"))));
        assert_eq!(split_app_key("iot"), Some(("iot", None)));
        assert_eq!(split_app_key("a-b-c"), None);
        assert_eq!(split_app_key("A"), None);
    }

    #[test]
    fn backends_are_http_https_or_internal() {
        let api = Origin::Api;
        assert!(check_backend("http://127.0.0.1:9001", api).is_ok());
        assert!(check_backend("https://example.org/base", api).is_ok());
        assert!(check_backend("internal:hello", Origin::Builtin).is_ok());
        assert!(check_backend("internal:hello", api).is_err());
        assert!(check_backend("internal:hello", Origin::File).is_err());
        assert!(check_backend("ftp://x", api).is_err());
        assert!(check_backend("http://", api).is_err());
        assert!(check_backend("http://u:p@host", api).is_err());
        assert!(check_backend("http://[::1", api).is_err());
        assert!(check_backend("internal:Hello", Origin::Builtin).is_err());
    }

    #[test]
    fn auth_takes_none_session_and_bearer() {
        assert_eq!(Auth::parse("none"), Ok(Auth::None));
        assert_eq!(Auth::parse("session"), Ok(Auth::Session));
        assert_eq!(Auth::parse("bearer"), Ok(Auth::Bearer));
        assert!(Auth::parse("basic").unwrap_err().contains("expected"));
        assert!(Auth::parse("Session").is_err());
    }

    fn app(auth: Auth, scopes: &[&str]) -> WebApp {
        WebApp {
            name: "shop".into(),
            provider: None,
            backend: "http://127.0.0.1:1".into(),
            tenants: vec![],
            cache_control: None,
            websockets: vec![],
            auth,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            origin: Origin::File,
        }
    }

    fn api(auth: Auth, scopes: &[&str]) -> Api {
        Api {
            name: "iot".into(),
            provider: None,
            version: 1,
            backend: "http://127.0.0.1:1".into(),
            routes: vec![],
            tenants: vec![],
            auth,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            origin: Origin::File,
        }
    }

    #[test]
    fn web_apps_take_session_or_none_and_apis_bearer_or_none() {
        assert!(app(Auth::Session, &["role:admin"]).validate().is_ok());
        assert!(app(Auth::None, &[]).validate().is_ok());
        let e = app(Auth::Bearer, &[]).validate().unwrap_err();
        assert_eq!(e.field, "auth");
        assert!(e.reason.contains("for APIs"), "{e}");
        assert!(api(Auth::Bearer, &["read", "write"]).validate().is_ok());
        assert!(api(Auth::None, &[]).validate().is_ok());
        let e = api(Auth::Session, &[]).validate().unwrap_err();
        assert_eq!(e.field, "auth");
        assert!(e.reason.contains("for web apps"), "{e}");
    }

    #[test]
    fn scopes_are_scope_tokens_and_need_a_signed_in_caller() {
        let e = api(Auth::None, &["read"]).validate().unwrap_err();
        assert_eq!(e.field, "scopes");
        assert!(e.reason.contains("auth = \"none\""), "{e}");
        let e = app(Auth::None, &["read"]).validate().unwrap_err();
        assert_eq!(e.field, "scopes");
        for bad in ["", "two words", "quo\"te", "back\\slash", "é"] {
            let e = api(Auth::Bearer, &[bad]).validate().unwrap_err();
            assert_eq!(e.field, "scopes", "{bad:?}");
        }
        assert!(api(Auth::Bearer, &["api:iot#read", "role:site-owner"])
            .validate()
            .is_ok());
    }

    #[test]
    fn registry_messages_name_the_entry_and_field() {
        let tenant = |name: &str| Tenant {
            name: name.into(),
            origin: Origin::File,
        };
        let app = WebApp {
            name: "shop".into(),
            provider: Some("xyz".into()),
            backend: "http://127.0.0.1:1".into(),
            tenants: vec!["abd".into()],
            cache_control: None,
            websockets: vec![],
            auth: Auth::None,
            scopes: vec![],
            origin: Origin::File,
        };
        let reg = Registry {
            tenants: vec![tenant("abc"), tenant("abc")],
            ..Default::default()
        };
        assert_eq!(
            reg.validate().unwrap_err(),
            "tenant \"abc\" is registered twice"
        );
        let reg = Registry {
            tenants: vec![tenant("abc")],
            webapps: vec![app],
            apis: vec![],
        };
        let err = reg.check().unwrap_err();
        assert_eq!(
            (err.kind, err.index, err.field),
            (EntryKind::WebApp, 0, Some("tenants"))
        );
        assert_eq!(
            err.to_string(),
            "webapp \"shop-xyz\": tenants: tenant \"abd\" is not registered"
        );
        let reg = Registry {
            tenants: vec![tenant("A")],
            ..Default::default()
        };
        assert!(reg
            .validate()
            .unwrap_err()
            .starts_with("tenant \"A\": name: \"A\" is not a valid name"));
    }
}
