//! The routing phase: from a request's host and path to a target, a core path Portico
//! serves itself, or a gateway error. The device, clientless and VPN route families have
//! files of their own beside this one.

use super::{
    host_kind_name, is_upgrade, no_single_host, under, ConnInfo, Dispatch, Gateway, Routed,
    TargetPath, GATEWAY_CORE_PATHS, IDENTITY_PATHS, SOUTHGATE_CORE_PATHS, WEBAPP_CORE_PATHS,
};
use crate::auth::enforce::Guard;
use crate::body::Body;
use crate::error::GatewayError;
use crate::headers::WebAppResponse;
use crate::metrics::RouteClass;
use crate::routing::{decode_unreserved, parse_api_path, validate_target, HostKind, ParsedHost};
use crate::table::{RoutingTable, Target};
use http::{Method, Request, StatusCode};

impl Gateway {
    /// A core identity path, for the `identity` service when this build has one.
    pub(super) fn identity_core(
        &self,
        decoded_path: &str,
        tenant: Option<&String>,
        web: Option<WebAppResponse>,
    ) -> Option<Routed> {
        let service = self.inner.identity.as_ref()?;
        if !IDENTITY_PATHS.iter().any(|p| under(decoded_path, p)) {
            return None;
        }
        Some(Routed::Forward(Dispatch {
            class: RouteClass::Core,
            target: service.clone(),
            path: TargetPath::AsSent,
            tenant: tenant.cloned(),
            upgrade: false,
            web,
            guard: Guard::IdentityCore,
        }))
    }

    /// The routing phase: from host and path to a target, or a gateway error. `host` is
    /// the one the request addresses, if it addresses one.
    pub(super) fn route(
        &self,
        request: &Request<Body>,
        host: Option<&str>,
        conn: &ConnInfo,
    ) -> Result<Routed, GatewayError> {
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        validate_target(target).map_err(|e| GatewayError::bad_request(e.to_string()))?;
        if request.method() == Method::CONNECT {
            return Err(GatewayError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not served: Portico is a reverse proxy, not a forward proxy",
            ));
        }
        if target == "*" {
            // The asterisk form asks about the server itself (RFC 7230 §5.3.4).
            return match *request.method() {
                Method::OPTIONS => Ok(Routed::Core),
                _ => Err(GatewayError::bad_request(
                    "The target * is only for OPTIONS",
                )),
            };
        }
        let host = host.ok_or_else(no_single_host)?;
        let parsed = conn
            .parsed_host(host, &self.inner.hosts)
            .ok_or_else(|| GatewayError::not_found(format!("Unknown host \"{host}\"")))?;
        let path = request.uri().path();
        // Prefixes are compared decoded, so that `/%6Cogin` is `/login` here as it is to
        // every backend.
        let decoded = decode_unreserved(path);
        let core = |paths: &[&str]| paths.iter().any(|p| under(&decoded, p));
        let table = self.inner.table.load();

        match &parsed.kind {
            HostKind::WebApp {
                tenant,
                app,
                provider,
            } => {
                if core(&WEBAPP_CORE_PATHS) {
                    if !table.has_web_tenant(tenant, app, provider.as_deref()) {
                        return Err(GatewayError::not_found(format!(
                            "Unknown tenant \"{tenant}\""
                        )));
                    }
                    let web = WebAppResponse {
                        cache_control: None,
                        policy: conn.policy(host, &parsed, &self.inner.policies),
                        client_version: request.version(),
                    };
                    return Ok(self
                        .identity_core(&decoded, Some(tenant), Some(web))
                        .unwrap_or(Routed::Core));
                }
                let names = (tenant.as_str(), app.as_str(), provider.as_deref());
                if let Some(routed) = self.route_clientless(request, &table, names) {
                    return routed;
                }
                // The host names a web app: it must exist and serve this tenant, also
                // for the API calls made from its pages (GW-7, GW-12a).
                let webapp = table.webapp(tenant, app, provider.as_deref())?;
                if under(&decoded, "/api") || under(&decoded, "/services") {
                    return self.route_api(&table, Some(tenant), request);
                }
                let upgrade = is_upgrade(request.headers());
                if upgrade && !webapp.websockets.iter().any(|p| p.matches(&decoded)) {
                    return Err(GatewayError::bad_request(format!(
                        "WebSocket upgrades are not enabled for {path} of the web application \"{}\"",
                        webapp.key
                    )));
                }
                let policy = conn.policy(host, &parsed, &self.inner.policies);
                Ok(Routed::Forward(Dispatch {
                    class: RouteClass::Webapp,
                    target: webapp.target.clone(),
                    path: TargetPath::AsSent,
                    tenant: ParsedHost::tenant_of(parsed),
                    upgrade,
                    web: Some(WebAppResponse {
                        cache_control: webapp.cache_control.clone(),
                        policy,
                        client_version: request.version(),
                    }),
                    guard: Guard::Registration {
                        rule: webapp.rule.clone(),
                        api: false,
                    },
                }))
            }
            HostKind::Gateway => {
                if let Some(routed) = self.route_devices(request, &decoded) {
                    return routed;
                }
                if core(&GATEWAY_CORE_PATHS) || path == "/healthz" {
                    return Ok(self
                        .identity_core(&decoded, None, None)
                        .unwrap_or(Routed::Core));
                }
                self.route_api(&table, None, request)
            }
            HostKind::Southgate => {
                if let Some(routed) = self.route_devices(request, &decoded) {
                    return routed;
                }
                if core(&SOUTHGATE_CORE_PATHS) {
                    return Ok(self
                        .identity_core(&decoded, None, None)
                        .unwrap_or(Routed::Core));
                }
                let routed = self.route_api(&table, None, request)?;
                // Portico's own APIs are for operators on `gateway`; `southgate` carries
                // device traffic only.
                if let Routed::Forward(Dispatch { target, .. }) = &routed {
                    if matches!(**target, Target::InProcess(_)) {
                        return Err(GatewayError::not_found(format!(
                            "\"{path}\" is not served on the device host; use the gateway host"
                        )));
                    }
                }
                Ok(routed)
            }
            HostKind::Static => {
                if core(&["/.well-known"]) {
                    return Ok(Routed::Core);
                }
                Ok(Routed::Static)
            }
            HostKind::Vpnrts { service } => {
                self.route_vpnrts(*service, request, &decoded, host_kind_name(&parsed))
            }
        }
    }

    /// API routing (GW-2..GW-4, GW-9) for `/api/...`, and `/services/...` on web-app hosts.
    fn route_api(
        &self,
        table: &RoutingTable,
        tenant: Option<&String>,
        request: &Request<Body>,
    ) -> Result<Routed, GatewayError> {
        let path = request.uri().path();
        let api_path = parse_api_path(path)
            .filter(|p| tenant.is_some() || p.prefix == crate::routing::ApiPrefix::Api)
            .ok_or_else(|| {
                GatewayError::not_found(format!(
                    "\"{path}\" is not an API path: expected /api/{{name}}[-{{provider}}]/v{{major}}/{{endpoint}}"
                ))
            })?;
        if is_upgrade(request.headers()) {
            return Err(GatewayError::bad_request(
                "WebSocket upgrades are not enabled on API routes",
            ));
        }
        let decoded = decode_unreserved(api_path.endpoint);
        let matched = table.api(
            tenant.map(String::as_str),
            &api_path,
            &decoded,
            request.method(),
        )?;
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        Ok(Routed::Forward(Dispatch {
            class: RouteClass::Api,
            target: matched.api.target.clone(),
            path: TargetPath::Rewritten(format!("{}{query}", api_path.endpoint)),
            tenant: tenant.cloned(),
            upgrade: false,
            web: None,
            guard: Guard::Registration {
                rule: matched.api.rule.clone(),
                api: true,
            },
        }))
    }
}
