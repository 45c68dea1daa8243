//! The declarative registry file (TOML): `[[tenants]]`, `[[webapps]]` and `[[apis]]`
//! tables, checked by the same rules as the admin API ([`crate::model`]). Every
//! error names the file, the line where known, the key, and the reason.
//!
//! ```toml
//! [[tenants]]
//! name = "abc"
//!
//! [[webapps]]
//! name = "assetmanager"
//! provider = "xyz"                   # optional: core apps have none
//! backend = "http://127.0.0.1:9001"
//! tenants = ["abc"]                  # optional, default empty
//! cache_control = ""                 # optional; empty means none
//! websockets = ["/videostream"]      # optional
//! auth = "session"                   # required: "session" (sign-in) or "none"
//! scopes = ["role:admin"]            # optional, only with auth = "session"
//!
//! [[apis]]
//! name = "iot"
//! provider = "xyz"
//! version = 3
//! backend = "http://127.0.0.1:9002"
//! routes = [ { pattern = "/assets/**", methods = ["GET", "POST"] } ]
//! tenants = ["abc"]
//! auth = "bearer"                    # required: "bearer" (a token) or "none"
//! scopes = ["iot.read"]              # optional, only with auth = "bearer"
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::model::{Api, Auth, EntryKind, Origin, Registry, Route, Tenant, WebApp};

/// A problem in a registry file. Displays as `{file}:{line}: {key}: {reason}`, or
/// `{file}: {key}: {reason}` when no line is known (and without `{key}: ` when the
/// problem is with the file as a whole, e.g. it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryFileError {
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// Which key: `webapp "assetmanager-xyz": tenants` for an entry's field,
    /// `apis.version` for a TOML error inside an `[[apis]]` table.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for RegistryFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RegistryFileError {}

/// Reads and parses the registry file at `path`.
pub fn load(path: &Path) -> Result<Registry, RegistryFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| RegistryFileError {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        reason: format!("cannot read the registry file: {e}"),
    })?;
    parse(&text, path)
}

/// Parses a registry file; `path` is only used in messages. Every entry gets
/// [`Origin::File`]. An empty file is an empty registry.
pub fn parse(text: &str, path: &Path) -> Result<Registry, RegistryFileError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(text, path, &e))?;
    let mut p = Parser {
        text,
        file: path,
        lines: Lines::default(),
    };
    let registry = p.convert(raw)?;
    registry.check().map_err(|e| {
        let lines = p.lines.of(e.kind);
        let line = lines.get(e.index).map(|l| l.line(e.field));
        let mut reason = e.reason;
        if e.field.is_none() {
            // Duplicates: say where the first one is.
            let first = registry_keys(&registry, e.kind)
                .iter()
                .position(|k| *k == e.key);
            if let Some(first) = first
                .and_then(|i| lines.get(i))
                .filter(|_| first != Some(e.index))
            {
                reason = format!("{reason} (first at line {})", first.entry);
            }
        }
        p.error(line, entry_key(e.kind, &e.key, e.field), reason)
    })?;
    Ok(registry)
}

const AUTH_REQUIRED: &str = "auth is required in every registration: \"session\" (web apps: users sign in), \
    \"bearer\" (APIs: callers present a token) or \"none\" (every request passes); there is no default, so that \
    what a registration allows can never change silently";

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tenants: Vec<S<RawTenant>>,
    #[serde(default)]
    webapps: Vec<S<RawWebApp>>,
    #[serde(default)]
    apis: Vec<S<RawApi>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebApp {
    name: S<String>,
    provider: Option<S<String>>,
    backend: S<String>,
    tenants: Option<S<Vec<String>>>,
    cache_control: Option<S<String>>,
    websockets: Option<S<Vec<String>>>,
    auth: Option<S<String>>,
    scopes: Option<S<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    name: S<String>,
    provider: Option<S<String>>,
    version: S<u32>,
    backend: S<String>,
    routes: Option<S<Vec<RawRoute>>>,
    tenants: Option<S<Vec<String>>>,
    auth: Option<S<String>>,
    scopes: Option<S<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    pattern: String,
    #[serde(default)]
    methods: Vec<String>,
}

/// Where an entry and its fields are.
struct EntryLines {
    entry: usize,
    fields: Vec<(&'static str, usize)>,
}

impl EntryLines {
    fn line(&self, field: Option<&str>) -> usize {
        field
            .and_then(|f| self.fields.iter().find(|(name, _)| *name == f))
            .map_or(self.entry, |(_, line)| *line)
    }
}

#[derive(Default)]
struct Lines {
    tenants: Vec<EntryLines>,
    webapps: Vec<EntryLines>,
    apis: Vec<EntryLines>,
}

impl Lines {
    fn of(&self, kind: EntryKind) -> &[EntryLines] {
        match kind {
            EntryKind::Tenant => &self.tenants,
            EntryKind::WebApp => &self.webapps,
            EntryKind::Api => &self.apis,
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    file: &'a Path,
    lines: Lines,
}

impl Parser<'_> {
    fn error(&self, line: Option<usize>, key: String, reason: String) -> RegistryFileError {
        RegistryFileError {
            file: self.file.to_path_buf(),
            line,
            key,
            reason,
        }
    }

    fn line<T>(&self, s: &S<T>) -> usize {
        line_of(self.text, s.span().start)
    }

    fn field<T>(&self, name: &'static str, s: &Option<S<T>>, out: &mut Vec<(&'static str, usize)>) {
        if let Some(s) = s {
            out.push((name, self.line(s)));
        }
    }

    fn auth(
        &self,
        kind: EntryKind,
        key: &str,
        entry_line: usize,
        auth: Option<&S<String>>,
    ) -> Result<Auth, RegistryFileError> {
        let key = entry_key(kind, key, Some("auth"));
        match auth {
            None => Err(self.error(Some(entry_line), key, AUTH_REQUIRED.to_string())),
            Some(a) => Auth::parse(a.get_ref())
                .map_err(|reason| self.error(Some(self.line(a)), key, reason)),
        }
    }

    fn convert(&mut self, raw: RawFile) -> Result<Registry, RegistryFileError> {
        let mut registry = Registry::default();
        for t in raw.tenants {
            let entry = self.line(&t);
            let t = t.into_inner();
            self.lines.tenants.push(EntryLines {
                entry,
                fields: vec![("name", self.line(&t.name))],
            });
            registry.tenants.push(Tenant {
                name: t.name.into_inner(),
                origin: Origin::File,
            });
        }
        for w in raw.webapps {
            let entry = self.line(&w);
            let w = w.into_inner();
            let mut fields = vec![
                ("name", self.line(&w.name)),
                ("backend", self.line(&w.backend)),
            ];
            self.field("provider", &w.provider, &mut fields);
            self.field("tenants", &w.tenants, &mut fields);
            self.field("cache_control", &w.cache_control, &mut fields);
            self.field("websockets", &w.websockets, &mut fields);
            self.field("auth", &w.auth, &mut fields);
            self.field("scopes", &w.scopes, &mut fields);
            let provider = w.provider.map(Spanned::into_inner);
            let key = crate::model::app_key(w.name.get_ref(), provider.as_deref());
            let auth = self.auth(EntryKind::WebApp, &key, entry, w.auth.as_ref())?;
            self.lines.webapps.push(EntryLines { entry, fields });
            registry.webapps.push(WebApp {
                name: w.name.into_inner(),
                provider,
                backend: w.backend.into_inner(),
                tenants: w.tenants.map(Spanned::into_inner).unwrap_or_default(),
                cache_control: w
                    .cache_control
                    .map(Spanned::into_inner)
                    .filter(|c| !c.is_empty()),
                websockets: w.websockets.map(Spanned::into_inner).unwrap_or_default(),
                auth,
                scopes: w.scopes.map(Spanned::into_inner).unwrap_or_default(),
                origin: Origin::File,
            });
        }
        for a in raw.apis {
            let entry = self.line(&a);
            let a = a.into_inner();
            let mut fields = vec![
                ("name", self.line(&a.name)),
                ("version", self.line(&a.version)),
                ("backend", self.line(&a.backend)),
            ];
            self.field("provider", &a.provider, &mut fields);
            self.field("routes", &a.routes, &mut fields);
            self.field("methods", &a.routes, &mut fields);
            self.field("tenants", &a.tenants, &mut fields);
            self.field("auth", &a.auth, &mut fields);
            self.field("scopes", &a.scopes, &mut fields);
            let provider = a.provider.map(Spanned::into_inner);
            let version = a.version.into_inner();
            let key = format!(
                "{}/v{version}",
                crate::model::app_key(a.name.get_ref(), provider.as_deref())
            );
            let auth = self.auth(EntryKind::Api, &key, entry, a.auth.as_ref())?;
            self.lines.apis.push(EntryLines { entry, fields });
            let routes = a.routes.map(Spanned::into_inner).unwrap_or_default();
            registry.apis.push(Api {
                name: a.name.into_inner(),
                provider,
                version,
                backend: a.backend.into_inner(),
                routes: routes
                    .into_iter()
                    .map(|r| Route {
                        pattern: r.pattern,
                        methods: r.methods,
                    })
                    .collect(),
                tenants: a.tenants.map(Spanned::into_inner).unwrap_or_default(),
                auth,
                scopes: a.scopes.map(Spanned::into_inner).unwrap_or_default(),
                origin: Origin::File,
            });
        }
        Ok(registry)
    }
}

/// `webapp "assetmanager-xyz": tenants`, or without the field.
fn entry_key(kind: EntryKind, key: &str, field: Option<&str>) -> String {
    match field {
        Some(f) => format!("{kind} \"{key}\": {f}"),
        None => format!("{kind} \"{key}\""),
    }
}

fn registry_keys(r: &Registry, kind: EntryKind) -> Vec<String> {
    match kind {
        EntryKind::Tenant => r.tenants.iter().map(|t| t.name.clone()).collect(),
        EntryKind::WebApp => r.webapps.iter().map(WebApp::key).collect(),
        EntryKind::Api => r.apis.iter().map(Api::key).collect(),
    }
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML syntax or shape error. The key is the best guess at where it is: the table
/// (`[[webapps]]` header above the line), the key written on the line, and the field
/// the message names, joined with dots, e.g. `apis.routes.methodz`.
fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> RegistryFileError {
    let line = e.span().map(|s| line_of(text, s.start));
    let mut reason = e.message().trim().to_string();
    if reason.contains("expected a sequence")
        && line.is_some_and(|n| is_single_table_header(text, n))
    {
        reason.push_str(
            "; write [[tenants]], [[webapps]] or [[apis]] (double brackets), one per entry",
        );
    }
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| {
            let rest = &reason[reason.find(prefix)? + prefix.len()..];
            Some(rest[..rest.find('`')?].to_string())
        });
    let lines: Vec<&str> = text.lines().collect();
    let mut parts: Vec<String> = Vec::new();
    if let Some(n) = line {
        let header = lines
            .iter()
            .take(n)
            .rev()
            .map(|l| l.trim())
            .find(|l| l.starts_with('['));
        if let Some(h) = header {
            parts.push(h.trim_matches(|c| c == '[' || c == ']').trim().to_string());
        }
        let on_line = lines
            .get(n - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| {
                !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            });
        if let Some(k) = on_line.filter(|k| named.as_deref() != Some(*k)) {
            parts.push(k.to_string());
        }
    }
    parts.extend(named);
    let key = if parts.is_empty() {
        "toml".to_string()
    } else {
        parts.join(".")
    };
    RegistryFileError {
        file: file.to_path_buf(),
        line,
        key,
        reason,
    }
}

fn is_single_table_header(text: &str, line: usize) -> bool {
    let l = text.lines().nth(line - 1).unwrap_or_default().trim();
    l.starts_with('[') && !l.starts_with("[[")
}

#[cfg(test)]
#[path = "registry_file_tests.rs"]
mod tests;
