//! The routing table: the registry compiled for fast lookups (Ant patterns parsed, backend
//! URLs split, subscriptions in sets, each registration's `auth` as an [`auth::Rule`]).
//! A table is immutable; a registry change builds a
//! new one that the gateway swaps in atomically, so no request sees half an update.

use crate::auth::{self, Rule};
use crate::error::GatewayError;
use crate::routing::{AntPattern, ApiPath};
use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Method, StatusCode, Uri};
use portico_store::{Api, Origin, Registry, WebApp, OPERATORS_TENANT};
use std::collections::HashSet;
use std::sync::Arc;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A backend URL: its scheme and authority, parsed once, and a base path without a
    /// trailing slash, with what every request to it needs made once: the `Host` it is
    /// sent with and its greylisting key.
    Http {
        scheme: Scheme,
        authority: Authority,
        base_path: String,
        host: HeaderValue,
        endpoint: String,
    },
    /// An in-process service by name (`internal:NAME`).
    InProcess(String),
}

impl Target {
    fn parse(backend: &str) -> Result<Target, String> {
        if let Some(name) = backend.strip_prefix("internal:") {
            return Ok(Target::InProcess(name.to_string()));
        }
        let uri: Uri = backend
            .parse()
            .map_err(|e| format!("backend \"{backend}\" is not a valid URL: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(format!("backend \"{backend}\" needs a scheme and a host"));
        };
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("backend \"{backend}\" has a host that cannot be sent"))?;
        let scheme_authority = format!("{scheme}://{authority}");
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Target::Http {
            endpoint: crate::greylist::endpoint_key(&scheme_authority, &base_path),
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path,
            host,
        })
    }
}

#[derive(Debug)]
pub struct WebAppRoute {
    pub key: String,
    provider: Option<String>,
    pub target: Arc<Target>,
    pub tenants: HashSet<String>,
    pub cache_control: Option<HeaderValue>,
    pub websockets: Vec<AntPattern>,
    /// What its callers must be (`auth`, `scopes`), audience `webapp:{key}`.
    pub rule: Arc<Rule>,
}

impl WebAppRoute {
    /// Only Portico's own console serves the operators' tenant. It is no registry tenant,
    /// so no other web app (a file's or the registry API's, which could list it) and no
    /// API ever receives an operator's session through a web-app host.
    fn serves_operators(&self) -> bool {
        self.key == OPERATORS_WEBAPP && self.rule.every_tenant
    }
}

/// The web app the operators' tenant is served: the built-in console.
const OPERATORS_WEBAPP: &str = "console";

#[derive(Debug)]
struct ApiRouteEntry {
    pattern: AntPattern,
    /// Empty: every method.
    methods: Vec<Method>,
}

impl ApiRouteEntry {
    /// `GET` also admits `HEAD`, as HTTP defines it.
    fn allows(&self, method: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET))
    }
}

#[derive(Debug)]
pub struct ApiRoute {
    pub key: String,
    provider: Option<String>,
    version: u32,
    pub target: Arc<Target>,
    pub tenants: HashSet<String>,
    /// What its callers must be (`auth`, `scopes`), audience `api:{name[-provider]}`.
    pub rule: Arc<Rule>,
    routes: Vec<ApiRouteEntry>,
}

/// An API and the pattern of the most specific route that admitted the request.
#[derive(Debug)]
pub struct ApiMatch<'a> {
    pub api: &'a ApiRoute,
    pub pattern: &'a str,
}

/// Entries are found by name, then among the few of that name by provider (and version):
/// lookups borrow the request's strings and allocate nothing. Every request makes a few
/// of them, so the maps hash with foldhash (seeded per process) rather than SipHash.
#[derive(Debug, Default)]
pub struct RoutingTable {
    tenants: foldhash::HashSet<String>,
    webapps: foldhash::HashMap<String, Vec<WebAppRoute>>,
    apis: foldhash::HashMap<String, Vec<ApiRoute>>,
}

impl RoutingTable {
    /// Compiles a registry. Entries were validated when stored; one that still cannot be
    /// compiled is left out and reported, so that one bad entry never stops the rest
    /// from routing.
    pub fn compile(registry: &Registry) -> (RoutingTable, Vec<String>) {
        let mut table = RoutingTable {
            tenants: registry.tenants.iter().map(|t| t.name.clone()).collect(),
            ..RoutingTable::default()
        };
        let mut problems = Vec::new();
        for w in &registry.webapps {
            match compile_webapp(w) {
                Ok(route) => table.webapps.entry(w.name.clone()).or_default().push(route),
                Err(problem) => problems.push(problem),
            }
        }
        for a in &registry.apis {
            match compile_api(a) {
                Ok(route) => table.apis.entry(a.name.clone()).or_default().push(route),
                Err(problem) => problems.push(problem),
            }
        }
        (table, problems)
    }

    /// The names of the in-process services this table routes to.
    pub fn internal_targets(&self) -> impl Iterator<Item = &str> {
        let webapps = self.webapps.values().flatten().map(|w| &*w.target);
        let apis = self.apis.values().flatten().map(|a| &*a.target);
        webapps.chain(apis).filter_map(|t| match t {
            Target::InProcess(name) => Some(name.as_str()),
            Target::Http { .. } => None,
        })
    }

    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains(tenant)
    }

    /// Whether `tenant` has web-app host `app[-provider]`: a registered tenant, or the
    /// operators' tenant (`management`, no registry tenant) on the console. The console
    /// host is where the platform operator signs in to the web console.
    pub fn has_web_tenant(&self, tenant: &str, app: &str, provider: Option<&str>) -> bool {
        self.has_tenant(tenant)
            || (tenant == OPERATORS_TENANT
                && self
                    .find_webapp(app, provider)
                    .is_some_and(WebAppRoute::serves_operators))
    }

    fn find_webapp(&self, app: &str, provider: Option<&str>) -> Option<&WebAppRoute> {
        self.webapps
            .get(app)
            .and_then(|routes| routes.iter().find(|r| r.provider.as_deref() == provider))
    }

    /// The web app on a web-app host, for a tenant that must be registered and subscribed
    /// (or the operators' tenant on Portico's own console, see [`Self::has_web_tenant`]).
    pub fn webapp(
        &self,
        tenant: &str,
        app: &str,
        provider: Option<&str>,
    ) -> Result<&WebAppRoute, GatewayError> {
        if !self.has_web_tenant(tenant, app, provider) {
            return Err(GatewayError::not_found(format!(
                "Unknown tenant \"{tenant}\""
            )));
        }
        let route = self.find_webapp(app, provider).ok_or_else(|| {
            let key = portico_store::app_key(app, provider);
            GatewayError::not_found(format!("Unknown web application \"{key}\""))
        })?;
        if !route.rule.serves(tenant) {
            return Err(GatewayError::not_found(format!(
                "Tenant \"{tenant}\" is not subscribed to the web application \"{}\"",
                route.key
            )));
        }
        Ok(route)
    }

    /// The API a request addresses, checked against the caller's tenant where it has one
    /// (GW-12a), and the route that admits its endpoint path and method (GW-9).
    /// `decoded_endpoint` is the endpoint with unreserved characters decoded.
    pub fn api(
        &self,
        tenant: Option<&str>,
        path: &ApiPath<'_>,
        decoded_endpoint: &str,
        method: &Method,
    ) -> Result<ApiMatch<'_>, GatewayError> {
        let api = self
            .apis
            .get(path.name)
            .and_then(|apis| {
                apis.iter()
                    .find(|a| a.provider.as_deref() == path.provider && a.version == path.major)
            })
            .ok_or_else(|| {
                let key = format!(
                    "{}/v{}",
                    portico_store::app_key(path.name, path.provider),
                    path.major
                );
                GatewayError::not_found(format!("Unknown API \"{key}\""))
            })?;
        let key = &api.key;
        if let Some(tenant) = tenant {
            if !self.has_tenant(tenant) {
                return Err(GatewayError::not_found(format!(
                    "Unknown tenant \"{tenant}\""
                )));
            }
            if !api.rule.serves(tenant) {
                return Err(GatewayError::not_found(format!(
                    "Tenant \"{tenant}\" is not subscribed to the API \"{key}\""
                )));
            }
        }
        let mut best: Option<&ApiRouteEntry> = None;
        let mut allowed: Vec<&Method> = Vec::new();
        let mut matched_any = false;
        for route in api
            .routes
            .iter()
            .filter(|r| r.pattern.matches(decoded_endpoint))
        {
            matched_any = true;
            if route.allows(method) {
                // Strictly greater: among equals the earlier registration wins.
                if best.is_none_or(|b| route.pattern.specificity() > b.pattern.specificity()) {
                    best = Some(route);
                }
            } else {
                allowed.extend(route.methods.iter());
            }
        }
        match (best, matched_any) {
            (Some(route), _) => Ok(ApiMatch {
                api,
                pattern: route.pattern.as_str(),
            }),
            (None, true) => {
                let mut names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                if names.contains(&"GET") {
                    names.push("HEAD");
                }
                names.sort_unstable();
                names.dedup();
                let allow = names.join(", ");
                let mut err = GatewayError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("Method {method} is not allowed on this route of the API \"{key}\"; allowed: {allow}"),
                );
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    err = err.with_header(header::ALLOW, value);
                }
                Err(err)
            }
            (None, false) => Err(GatewayError::not_found(format!(
                "No route of the API \"{key}\" matches {}",
                path.endpoint
            ))),
        }
    }
}

fn compile_webapp(w: &WebApp) -> Result<WebAppRoute, String> {
    let cache_control = match w.cache_control.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(cc) => Some(HeaderValue::from_str(cc).map_err(|_| {
            format!(
                "webapp \"{}\": cache_control is not a valid header value",
                w.key()
            )
        })?),
    };
    Ok(WebAppRoute {
        key: w.key(),
        provider: w.provider.clone(),
        target: Arc::new(
            Target::parse(&w.backend).map_err(|e| format!("webapp \"{}\": {e}", w.key()))?,
        ),
        tenants: w.tenants.iter().cloned().collect(),
        cache_control,
        websockets: w.websockets.iter().map(|p| AntPattern::new(p)).collect(),
        rule: Arc::new(Rule {
            auth: w.auth,
            audience: auth::webapp_audience(&w.key()),
            scopes: w.scopes.clone(),
            subscribers: w.tenants.iter().cloned().collect(),
            // As for APIs: Portico's own web apps (the console) serve every tenant.
            every_tenant: w.origin == Origin::Builtin && w.tenants.is_empty(),
        }),
    })
}

fn compile_api(a: &Api) -> Result<ApiRoute, String> {
    let mut routes = Vec::with_capacity(a.routes.len());
    for r in &a.routes {
        let methods = r
            .methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("api \"{}\": invalid method in route {}", a.key(), r.pattern))?;
        routes.push(ApiRouteEntry {
            pattern: AntPattern::new(&r.pattern),
            methods,
        });
    }
    Ok(ApiRoute {
        key: a.key(),
        provider: a.provider.clone(),
        version: a.version,
        target: Arc::new(
            Target::parse(&a.backend).map_err(|e| format!("api \"{}\": {e}", a.key()))?,
        ),
        tenants: a.tenants.iter().cloned().collect(),
        rule: Arc::new(Rule {
            auth: a.auth,
            audience: auth::api_audience(&a.name, a.provider.as_deref()),
            scopes: a.scopes.clone(),
            subscribers: a.tenants.iter().cloned().collect(),
            every_tenant: a.origin == Origin::Builtin && a.tenants.is_empty(),
        }),
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::parse_api_path;
    use portico_store::{Auth, Origin, Route, Tenant};

    fn registry() -> Registry {
        Registry {
            tenants: vec![
                Tenant {
                    name: "abc".into(),
                    origin: Origin::File,
                },
                Tenant {
                    name: "other".into(),
                    origin: Origin::File,
                },
            ],
            webapps: vec![WebApp {
                name: "assetmanager".into(),
                provider: Some("xyz".into()),
                backend: "http://127.0.0.1:9001/base/".into(),
                tenants: vec!["abc".into()],
                cache_control: Some(String::new()),
                websockets: vec!["/videostream".into()],
                auth: Auth::None,
                scopes: Vec::new(),
                origin: Origin::File,
            }],
            apis: vec![Api {
                name: "iot".into(),
                provider: Some("xyz".into()),
                version: 3,
                backend: "http://127.0.0.1:9002".into(),
                routes: vec![
                    Route {
                        pattern: "/assets/**".into(),
                        methods: vec!["GET".into(), "POST".into()],
                    },
                    Route {
                        pattern: "/assets/*/admin".into(),
                        methods: vec!["DELETE".into()],
                    },
                ],
                tenants: vec!["abc".into()],
                auth: Auth::None,
                scopes: Vec::new(),
                origin: Origin::File,
            }],
        }
    }

    #[test]
    fn backend_urls_split_into_authority_and_base_path() {
        let (t, problems) = RoutingTable::compile(&registry());
        assert!(problems.is_empty());
        let w = t.webapp("abc", "assetmanager", Some("xyz")).unwrap();
        assert_eq!(
            *w.target,
            Target::Http {
                scheme: http::uri::Scheme::HTTP,
                authority: http::uri::Authority::from_static("127.0.0.1:9001"),
                base_path: "/base".into(),
                host: HeaderValue::from_static("127.0.0.1:9001"),
                endpoint: "http://127.0.0.1:9001/base".into(),
            }
        );
    }

    #[test]
    fn auth_and_scopes_compile_into_each_routes_rule() {
        let mut reg = registry();
        reg.webapps[0].auth = Auth::Session;
        reg.apis[0].auth = Auth::Bearer;
        reg.apis[0].scopes = vec!["iot.read".into()];
        let (t, problems) = RoutingTable::compile(&reg);
        assert!(problems.is_empty());
        let w = t.webapp("abc", "assetmanager", Some("xyz")).unwrap();
        assert_eq!(w.rule.auth, Auth::Session);
        assert_eq!(w.rule.audience, "webapp:assetmanager-xyz");
        assert!(w.rule.scopes.is_empty() && w.rule.subscribers.contains("abc"));
        let p = parse_api_path("/api/iot-xyz/v3/assets/1").unwrap();
        let a = t.api(None, &p, p.endpoint, &Method::GET).unwrap().api;
        assert_eq!(a.rule.auth, Auth::Bearer);
        assert_eq!(a.rule.audience, "api:iot-xyz");
        assert_eq!(a.rule.scopes, ["iot.read"]);
        assert!(!a.rule.is_open());
    }

    #[test]
    fn web_apps_need_a_registered_subscribed_tenant() {
        let (t, problems) = RoutingTable::compile(&registry());
        assert!(problems.is_empty());
        assert!(t.webapp("nobody", "assetmanager", Some("xyz")).is_err());
        assert!(t.webapp("other", "assetmanager", Some("xyz")).is_err());
        assert!(t.webapp("abc", "assetmanager", None).is_err());
    }

    #[test]
    fn builtin_web_apps_without_tenants_serve_every_registered_tenant() {
        let mut reg = registry();
        let mut console = reg.webapps[0].clone();
        console.name = "console".into();
        console.provider = None;
        console.tenants = Vec::new();
        console.origin = Origin::Builtin;
        let mut listed = console.clone();
        listed.name = "listed".into();
        listed.origin = Origin::File;
        reg.webapps.extend([console, listed]);
        let (t, problems) = RoutingTable::compile(&reg);
        assert!(problems.is_empty());
        assert!(t.webapp("abc", "console", None).is_ok());
        assert!(t.webapp("other", "console", None).is_ok());
        assert!(t.webapp("nobody", "console", None).is_err());
        // A file's web app with no tenants serves none.
        assert!(t.webapp("abc", "listed", None).is_err());
    }

    #[test]
    fn the_operators_tenant_has_the_builtin_console_and_nothing_else() {
        let mut reg = registry();
        let mut console = reg.webapps[0].clone();
        console.name = "console".into();
        console.provider = None;
        console.tenants = Vec::new();
        console.origin = Origin::Builtin;
        // A file's web app that lists the operators' tenant still does not serve it.
        let mut listing = console.clone();
        listing.name = "listing".into();
        listing.origin = Origin::File;
        listing.tenants = vec![OPERATORS_TENANT.into()];
        // Nor does another built-in web app serving every tenant.
        let mut other_builtin = console.clone();
        other_builtin.name = "other".into();
        reg.webapps.extend([console, listing, other_builtin]);
        let mut api = reg.apis[0].clone();
        api.provider = None;
        api.name = "own".into();
        api.tenants = Vec::new();
        api.origin = Origin::Builtin;
        reg.apis.push(api);
        let (t, problems) = RoutingTable::compile(&reg);
        assert!(problems.is_empty());
        assert!(!t.has_tenant(OPERATORS_TENANT));
        assert!(t.has_web_tenant(OPERATORS_TENANT, "console", None));
        assert!(t.webapp(OPERATORS_TENANT, "console", None).is_ok());
        assert!(t.webapp(OPERATORS_TENANT, "listing", None).is_err());
        assert!(t.webapp(OPERATORS_TENANT, "other", None).is_err());
        assert!(!t.has_web_tenant(OPERATORS_TENANT, "other", None));
        // Built-in APIs serving every tenant do not serve the operators' tenant.
        let p = parse_api_path("/api/own/v3/assets/1").unwrap();
        assert!(t.api(Some("abc"), &p, p.endpoint, &Method::GET).is_ok());
        assert_eq!(
            t.api(Some(OPERATORS_TENANT), &p, p.endpoint, &Method::GET)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn api_routes_pick_by_pattern_and_method() {
        let (t, problems) = RoutingTable::compile(&registry());
        assert!(problems.is_empty());
        let p = parse_api_path("/api/iot-xyz/v3/assets/1").unwrap();
        assert!(t.api(Some("abc"), &p, p.endpoint, &Method::GET).is_ok());
        assert!(t.api(Some("abc"), &p, p.endpoint, &Method::HEAD).is_ok());
        let err = t
            .api(Some("abc"), &p, p.endpoint, &Method::PUT)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err.headers[0].1, "GET, HEAD, POST");
        assert_eq!(
            t.api(Some("other"), &p, p.endpoint, &Method::GET)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert!(t.api(None, &p, p.endpoint, &Method::GET).is_ok());

        let admin = parse_api_path("/api/iot-xyz/v3/assets/1/admin").unwrap();
        assert_eq!(
            t.api(None, &admin, admin.endpoint, &Method::DELETE)
                .unwrap()
                .pattern,
            "/assets/*/admin"
        );
        assert_eq!(
            t.api(None, &admin, admin.endpoint, &Method::GET)
                .unwrap()
                .pattern,
            "/assets/**"
        );
        let other = parse_api_path("/api/iot-xyz/v3/fleets").unwrap();
        assert_eq!(
            t.api(None, &other, other.endpoint, &Method::GET)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        let v4 = parse_api_path("/api/iot-xyz/v4/assets").unwrap();
        assert_eq!(
            t.api(None, &v4, v4.endpoint, &Method::GET)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
    }
}
