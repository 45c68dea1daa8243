//! The gateway server: takes every request through the same phases: check the target
//! (GW-10), read the host (GW-1..GW-6), pick a target from the routing table (GW-7..GW-9),
//! authorise the caller ([`crate::auth`], ID-1..ID-5), hold the body to the limits and the
//! endpoint to greylisting, forward it (GW-12), log it.
//! Errors become responses in one place, [`crate::error`]. The routing phase is in
//! [`route`], the forwarding phase in [`forward`]; accepting and serving connections is
//! [`listener`]'s part.

use crate::auth::enforce::{Arrival, Guard};
use crate::auth::{Authenticator, Caller, Denial};
use crate::body::{empty, full, Body};
use crate::config::GatewayConfig;
use crate::error::{render, GatewayError};
use crate::greylist::Greylist;
use crate::headers::WebAppResponse;
use crate::metrics::{Metrics, ReloadResult, RouteClass};
use crate::proxy::Proxy;
use crate::routing::{parse_host, HostConfig, HostKind, ParsedHost};
use crate::service::Services;
use crate::table::{RoutingTable, Target};
use crate::websocket::OpenWebSockets;
use arc_swap::ArcSwap;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use portico_store::Registry;
use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::Semaphore;

mod clientless;
mod devices;
mod forward;
mod listener;
#[cfg(test)]
pub(crate) use listener::client_io;
pub(crate) use listener::ClientIo;
mod policies;
mod route;
mod vpnrts;

use forward::TargetPath;

pub use clientless::{harden_device_cookies, CLIENTLESS_SERVICE, REMOTE_APP};
pub use devices::DEVICE_SERVICE;

/// The connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    pub client: SocketAddr,
    pub tls: bool,
    /// The forwarding header values of the connection's requests.
    forwarding: crate::proxy::ConnForwarding,
    /// The host of the connection's first request, parsed.
    host: OnceLock<FirstHost>,
}

/// The host of a connection's first request, and what the requests that name it share.
#[derive(Debug)]
struct FirstHost {
    text: Box<str>,
    parsed: Option<ParsedHost>,
    /// Its default Content-Security-Policy, a copy of its own: a clone of the gateway's
    /// kept one, and the lock around them, wrote what every core shares on each request.
    policy: OnceLock<Option<HeaderValue>>,
}

impl ConnInfo {
    pub fn new(client: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            client,
            tls,
            forwarding: Default::default(),
            host: OnceLock::new(),
        }
    }

    /// `host` parsed as [`parse_host`] does (`None`: not served here). The host of the
    /// connection's first request is kept parsed, since nearly every request after it
    /// names the same one; parsing it cost about a fiftieth of a small request, with two
    /// allocations. Any other host is parsed again.
    pub(super) fn parsed_host(
        &self,
        host: &str,
        hosts: &HostConfig,
    ) -> Option<Cow<'_, ParsedHost>> {
        let first = self.host.get_or_init(|| FirstHost {
            text: host.into(),
            parsed: parse_host(host, hosts),
            policy: OnceLock::new(),
        });
        match *first.text == *host {
            true => first.parsed.as_ref().map(Cow::Borrowed),
            false => parse_host(host, hosts).map(Cow::Owned),
        }
    }

    /// The default Content-Security-Policy of a web-app response to `host`, parsed as
    /// `parsed` by [`ConnInfo::parsed_host`] (GW-20); made once for the connection's first
    /// host, which is the one [`ConnInfo::parsed_host`] lends out.
    // A `Cow`, not a `&ParsedHost`: whether the parse is lent tells the first host.
    #[allow(clippy::ptr_arg)]
    fn policy(
        &self,
        host: &str,
        parsed: &Cow<'_, ParsedHost>,
        policies: &policies::Policies,
    ) -> Option<HeaderValue> {
        match (parsed, self.host.get()) {
            (Cow::Borrowed(_), Some(first)) => first
                .policy
                .get_or_init(|| {
                    let kept = policies.for_host(parsed, host)?;
                    HeaderValue::from_bytes(kept.as_bytes()).ok()
                })
                .clone(),
            _ => policies.for_host(parsed, host),
        }
    }
}

/// The gateway; cheap to clone, shared by every listener and connection.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced whole by [`Gateway::reconfigure`]; each request reads it once.
    config: ArcSwap<GatewayConfig>,
    hosts: HostConfig,
    table: ArcSwap<RoutingTable>,
    services: Services,
    /// Rebuilt when the proxy settings change.
    proxy: ArcSwap<Proxy>,
    metrics: Metrics,
    ready: AtomicBool,
    /// Set when the process stops: `/readyz` then answers 404 while requests drain.
    draining: AtomicBool,
    /// One permit per client connection (GW-13).
    connections: Arc<Semaphore>,
    /// The permits `connections` was made with, adjusted by [`Gateway::reconfigure`].
    connection_permits: std::sync::Mutex<usize>,
    /// Refusals of connections over the limit being written now; bounded too.
    refusals: Arc<Semaphore>,
    /// Slow backend endpoints (GW-14).
    greylist: Greylist,
    /// The WebSockets relayed now, closed with 1001 at shutdown (GW-24).
    websockets: OpenWebSockets,
    /// The identity service; without it, registrations that require signing in answer 503.
    authenticator: Option<Arc<dyn Authenticator>>,
    /// The in-process service of the core identity paths, when this build has one.
    identity: Option<Arc<Target>>,
    /// The default Content-Security-Policy of each static host (GW-20).
    policies: policies::Policies,
}

/// The outcome of the routing phase. It lives on the stack for one request; boxing the
/// large variant would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Routed {
    /// A core path that Portico answers itself (GW-6a).
    Core,
    /// A file of the static content host (GW-5).
    Static,
    Forward(Dispatch),
}

/// Where a request is forwarded.
struct Dispatch {
    class: RouteClass,
    target: Arc<Target>,
    /// The path and query appended to the target's base path.
    path: TargetPath,
    tenant: Option<String>,
    upgrade: bool,
    /// For web apps: what their responses' gateway headers need (GW-17..GW-20).
    web: Option<WebAppResponse>,
    /// Who may pass (ID-1..ID-5).
    guard: Guard,
}

/// Refusals (503 over the connection limit) written at the same time, at most; beyond
/// them a connection over the limit is closed at once.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// The core paths answered by the in-process service `identity` when this build has one.
const IDENTITY_PATHS: [&str; 5] = ["/.well-known", "/uaa", "/oauth", "/login", "/logout"];
/// The name of the identity service among the in-process services.
const IDENTITY_SERVICE: &str = "identity";

/// Paths served by Portico itself on web-app hosts, ahead of any registration (GW-6a).
const WEBAPP_CORE_PATHS: [&str; 5] = ["/.well-known", "/uaa", "/oauth", "/login", "/logout"];
const GATEWAY_CORE_PATHS: [&str; 3] = ["/.well-known", "/uaa", "/oauth"];
const SOUTHGATE_CORE_PATHS: [&str; 3] = ["/.well-known", "/uaa", "/oauth"];

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Gateway {
    /// A gateway with an empty routing table and without the identity service;
    /// install a registry before serving.
    pub fn new(config: GatewayConfig, services: Services) -> Gateway {
        Gateway::with_authenticator(config, services, None)
    }

    /// A gateway that authenticates callers with `authenticator` (the identity service).
    /// Without one, registrations with `auth = "session"` or `"bearer"` answer 503.
    pub fn with_authenticator(
        config: GatewayConfig,
        services: Services,
        authenticator: Option<Arc<dyn Authenticator>>,
    ) -> Gateway {
        let max_connections = config.max_connections;
        let identity = services
            .contains_key(IDENTITY_SERVICE)
            .then(|| Arc::new(Target::InProcess(IDENTITY_SERVICE.to_string())));
        let metrics = Metrics::new();
        let greylist = Greylist::new(metrics.greylist());
        Gateway {
            inner: Arc::new(Inner {
                hosts: HostConfig::new(&config.domains, &config.regions),
                proxy: ArcSwap::from_pointee(Proxy::new(
                    config.connect_timeout,
                    config.response_timeout,
                    &config.backend_roots,
                )),
                config: ArcSwap::from_pointee(config),
                table: ArcSwap::from_pointee(RoutingTable::default()),
                services,
                metrics,
                ready: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                connections: Arc::new(Semaphore::new(max_connections)),
                connection_permits: std::sync::Mutex::new(max_connections),
                refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
                greylist,
                websockets: OpenWebSockets::default(),
                authenticator,
                identity,
                policies: Default::default(),
            }),
        }
    }

    /// Compiles `registry` and swaps it in atomically: requests already routed keep the
    /// table they started with. Entries that cannot be compiled are left out; their
    /// problems are logged, counted, and returned.
    pub fn install(&self, registry: &Registry) -> Vec<String> {
        let (table, mut problems) = RoutingTable::compile(registry);
        problems.extend(
            table
                .internal_targets()
                .filter(|name| !self.inner.services.contains_key(*name))
                .map(|name| {
                    format!("backend \"internal:{name}\" names no in-process service of this build")
                }),
        );
        self.inner.table.store(Arc::new(table));
        self.inner.ready.store(true, Ordering::Release);
        let result = if problems.is_empty() {
            ReloadResult::Ok
        } else {
            ReloadResult::Error
        };
        self.inner.metrics.registry_reload(result);
        for problem in &problems {
            tracing::error!("registry entry not routed: {problem}");
        }
        problems
    }

    /// The settings in force now.
    pub fn config(&self) -> Arc<GatewayConfig> {
        self.inner.config.load_full()
    }

    /// Applies new limits, greylisting and proxy settings to new connections and
    /// requests (OPS-5). Domains and regions are fixed at start; a change to them is
    /// refused and nothing is applied.
    pub fn reconfigure(&self, config: GatewayConfig) -> Result<(), String> {
        let current = self.config();
        if config.domains != current.domains || config.regions != current.regions {
            return Err("server.domains and server.regions take effect after a restart".into());
        }
        if config.connect_timeout != current.connect_timeout
            || config.response_timeout != current.response_timeout
            || config.backend_roots != current.backend_roots
        {
            self.inner.proxy.store(Arc::new(Proxy::new(
                config.connect_timeout,
                config.response_timeout,
                &config.backend_roots,
            )));
        }
        self.resize_connection_limit(config.max_connections);
        self.inner.config.store(Arc::new(config));
        Ok(())
    }

    /// Grows or shrinks the connection limit. Shrinking takes back free permits now and
    /// the rest as connections close.
    fn resize_connection_limit(&self, wanted: usize) {
        let mut permits = self
            .inner
            .connection_permits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if wanted > *permits {
            self.inner.connections.add_permits(wanted - *permits);
        } else if wanted < *permits {
            let excess = *permits - wanted;
            let inner = self.inner.clone();
            let taken = inner.connections.forget_permits(excess);
            if taken < excess {
                let rest = (excess - taken) as u32;
                tokio::spawn(async move {
                    if let Ok(permits) = inner.connections.acquire_many(rest).await {
                        permits.forget();
                    }
                });
            }
        }
        *permits = wanted;
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The WebSockets relayed now.
    pub fn websockets(&self) -> &OpenWebSockets {
        &self.inner.websockets
    }

    /// Ready once a registry has been installed (`/readyz` looks at the drain first).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Marks the gateway as stopping: from now on `/readyz` answers 404, so that a load
    /// balancer takes the node out of the rotation while what is in flight finishes.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Answers one request. Used by the connection loop, and by tests directly.
    ///
    /// Not an `async fn`, nor is the forwarding phase: such a function's future keeps
    /// every argument twice, once as it was passed and once as the body's own variable,
    /// and a request's futures are copied whole as each one starts.
    #[allow(clippy::manual_async_fn)]
    pub fn handle<'a>(
        &'a self,
        mut request: Request<Body>,
        conn: &'a ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send + 'a {
        async move {
            let started = Instant::now();
            // The client's id when it is one (printable ASCII, 1 to 128 bytes), else a new one;
            // a header value from here on, shared by the backend's request and the response.
            let request_id = request
                .headers()
                .get(crate::REQUEST_ID)
                .filter(|v| {
                    let id = v.as_bytes();
                    !id.is_empty() && id.len() <= 128 && id.iter().all(u8::is_ascii_graphic)
                })
                .cloned()
                .unwrap_or_else(crate::new_request_id_value);
            let accept = AcceptValues::of(request.headers());
            // The host the client addressed, looked up and checked once for every phase.
            let host = addressed_host(&request);
            let host = host
                .as_ref()
                .and_then(|value| Some((value, value.to_str().ok()?)));
            let host_text = host.map(|(_, text)| text);
            // What the access line needs outlives the request; it is copied only when logged.
            let logged =
                tracing::enabled!(target: "portico::access", tracing::Level::INFO).then(|| {
                    (
                        request.method().clone(),
                        host_text.unwrap_or_default().to_string(),
                        request.uri().path().to_string(),
                    )
                });

            // Routing, authorisation and forwarding, within this future. A request's futures
            // are copied whole as each one starts, so the path keeps them small: few nested
            // `async fn`s, and rare branches (static files, in-process services, WebSocket
            // upgrades) boxed, so that their size does not count for every request.
            let (class, result) = 'answered: {
                let dispatch = match self.route(&request, host_text, conn) {
                    Ok(Routed::Core) => break 'answered (RouteClass::Core, core(&request)),
                    Ok(Routed::Static) => {
                        let (request, _unread) = request.into_parts();
                        let served = Box::pin(self.serve_static(&request, &request_id)).await;
                        break 'answered (RouteClass::Static, served);
                    }
                    Ok(Routed::Forward(d)) => d,
                    Err(e) => break 'answered (RouteClass::Unrouted, Err(e)),
                };
                let class = dispatch.class;
                // A forwarded request has a host: routing refuses one without.
                let Some((host, host_text)) = host else {
                    break 'answered (class, Err(no_single_host()));
                };
                // In a block of its own, so that the parts take no room in the future beyond it.
                let authorized = {
                    let (parts, body) = request.into_parts();
                    let authorized = self.authorize(&parts, &dispatch, conn, host_text).await;
                    request = Request::from_parts(parts, body);
                    authorized
                };
                let caller = match authorized {
                    Ok(caller) => caller,
                    Err(Denial::Refused(e)) => break 'answered (class, Err(e)),
                    Err(Denial::SignIn(mut response)) => {
                        response
                            .headers_mut()
                            .insert(crate::REQUEST_ID, request_id.clone());
                        break 'answered (class, Ok(response));
                    }
                };
                let forwarded = self
                    .forward(
                        request,
                        dispatch,
                        caller,
                        conn,
                        &request_id,
                        (host, host_text),
                    )
                    .await;
                (class, forwarded)
            };
            let request_id = request_id.to_str().unwrap_or_default();
            let response = result.unwrap_or_else(|e| render(&e, &accept.headers(), request_id));

            let status = response.status().as_u16();
            let elapsed = started.elapsed();
            self.inner
                .metrics
                .request(class, status, elapsed.as_secs_f64());
            if let Some((method, host, path)) = logged {
                tracing::info!(
                    target: "portico::access",
                    request_id = %request_id,
                    client = %conn.client.ip(),
                    method = %method,
                    host = %host,
                    path = %path,
                    status,
                    class = class.as_str(),
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                );
            }
            response
        }
    }

    /// The authorisation phase ([`crate::auth`]): who the caller is, and whether the
    /// target lets them in.
    async fn authorize(
        &self,
        request: &http::request::Parts,
        dispatch: &Dispatch,
        conn: &ConnInfo,
        host: &str,
    ) -> Result<Option<Caller>, Denial> {
        let arrival = Arrival {
            tenant: dispatch.tenant.as_deref(),
            tls: conn.tls,
            host,
            upgrade: dispatch.upgrade,
        };
        crate::auth::authorize(
            self.inner.authenticator.as_deref(),
            &dispatch.guard,
            request,
            &arrival,
        )
        .await
    }

    /// The static content host (GW-5): files of `[static] dir`, nothing without one.
    async fn serve_static(
        &self,
        request: &http::request::Parts,
        request_id: &HeaderValue,
    ) -> Result<Response<Body>, GatewayError> {
        let config = self.config();
        let Some(dir) = config.static_dir.as_deref() else {
            return Err(GatewayError::not_found(format!(
                "Nothing is served at {} on the static content host",
                request.uri.path()
            )));
        };
        let mut response = crate::static_files::serve(dir, request).await?;
        response
            .headers_mut()
            .insert(crate::REQUEST_ID, request_id.clone());
        Ok(response)
    }
}

/// A request's `Accept` values, kept for an error response after the request has gone on
/// to its target. Most requests carry one or none, kept without an allocation; a header map
/// of their own cost one (and a hashed insert) for every request that has one.
struct AcceptValues {
    first: Option<HeaderValue>,
    more: Vec<HeaderValue>,
}

impl AcceptValues {
    fn of(headers: &HeaderMap) -> AcceptValues {
        let mut values = headers.get_all(header::ACCEPT).iter().cloned();
        AcceptValues {
            first: values.next(),
            more: values.collect(),
        }
    }

    /// The values as the headers error rendering negotiates from.
    fn headers(&self) -> HeaderMap {
        self.first
            .iter()
            .chain(&self.more)
            .map(|value| (header::ACCEPT, value.clone()))
            .collect()
    }
}

/// Core paths (GW-6a). Only the health check exists so far; the rest are reserved for
/// the identity and device services and answered as not found until they exist.
fn core(request: &Request<Body>) -> Result<Response<Body>, GatewayError> {
    let path = request.uri().path();
    if request.uri() == "*" {
        let mut response = Response::new(empty());
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return Ok(response);
    }
    if path != "/healthz" {
        return Err(GatewayError::not_found(format!(
            "{path} is reserved for a Portico service that this server does not run"
        )));
    }
    let mut response = Response::new(full("ok\n"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// The host a request addresses: the authority of an absolute-form target, else the one
/// `Host` header (RFC 7230 §5.4; two `Host` headers address nothing). The `Host` header
/// itself when the host came from it: shared, not copied.
fn addressed_host<B>(request: &Request<B>) -> Option<HeaderValue> {
    match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => single_host(request.headers()).cloned(),
    }
}

/// The refusal of a request that addresses no host, or more than one.
fn no_single_host() -> GatewayError {
    GatewayError::bad_request("The request needs exactly one Host header")
}

/// The request's one `Host` header; none when it has none, or more than one.
fn single_host(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => Some(host),
        _ => None,
    }
}

/// A WebSocket upgrade; other upgrade requests are served as plain requests.
fn is_upgrade(headers: &HeaderMap) -> bool {
    let values = |name| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
    crate::head_guard::wants_websocket(values(header::CONNECTION), values(header::UPGRADE))
}

/// An upgrade to any protocol the gateway switches to: WebSocket, or the relay's framed
/// lanes (which only the relay's paths take).
fn is_switch(headers: &HeaderMap) -> bool {
    let values = |name| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
    crate::head_guard::wants_switch(values(header::CONNECTION), values(header::UPGRADE))
}

fn host_kind_name(host: &ParsedHost) -> &'static str {
    match host.kind {
        HostKind::Static => "the static content host",
        HostKind::Vpnrts { .. } => "the Remote Services host",
        _ => "this host",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_keeps_its_first_host_parsed_and_parses_others_each_time() {
        let hosts = HostConfig::new(&["example.org".into()], &["eu1".into()]);
        let conn = ConnInfo::new("127.0.0.1:9".parse().unwrap(), false);
        let first = "t-a.eu1.example.org";
        for _ in 0..2 {
            let parsed = conn.parsed_host(first, &hosts).expect("served");
            assert!(
                matches!(parsed, Cow::Borrowed(_)),
                "kept from the first request"
            );
            assert_eq!(Some(parsed.into_owned()), parse_host(first, &hosts));
        }
        let other = conn.parsed_host("gateway.eu1.example.org", &hosts);
        assert!(
            matches!(other, Some(Cow::Owned(_))),
            "parsed for this request"
        );
        assert_eq!(other.unwrap().kind, HostKind::Gateway);
        assert!(conn.parsed_host("nowhere.example.com", &hosts).is_none());
        assert!(
            matches!(conn.parsed_host(first, &hosts), Some(Cow::Borrowed(_))),
            "other hosts did not replace the first"
        );
    }

    #[test]
    fn a_first_host_not_served_here_stays_not_served() {
        let hosts = HostConfig::new(&["example.org".into()], &["eu1".into()]);
        let conn = ConnInfo::new("127.0.0.1:9".parse().unwrap(), false);
        assert!(conn.parsed_host("nowhere.example.com", &hosts).is_none());
        assert!(conn.parsed_host("nowhere.example.com", &hosts).is_none());
        assert!(conn.parsed_host("static.eu1.example.org", &hosts).is_some());
    }

    /// The first host's policy is the gateway's, in a copy the connection owns (its
    /// clones count on the connection's core alone); another host's is the gateway's own.
    #[test]
    fn a_connection_keeps_a_copy_of_its_first_hosts_policy() {
        let hosts = HostConfig::new(&["example.org".into()], &["eu1".into()]);
        let policies = policies::Policies::default();
        let conn = ConnInfo::new("127.0.0.1:9".parse().unwrap(), false);
        let policy_of = |host: &str| {
            let parsed = conn.parsed_host(host, &hosts).expect("served");
            (
                conn.policy(host, &parsed, &policies),
                policies.for_host(&parsed, host),
            )
        };
        let first = "t-a.eu1.example.org:8443";
        for _ in 0..2 {
            let (kept, gateways) = policy_of(first);
            let (kept, gateways) = (kept.expect("a policy"), gateways.expect("a policy"));
            assert_eq!(kept, gateways);
            assert!(kept
                .to_str()
                .unwrap()
                .contains("static.eu1.example.org:8443;"));
            assert_ne!(
                kept.as_bytes().as_ptr(),
                gateways.as_bytes().as_ptr(),
                "the connection's own copy"
            );
            assert_eq!(
                conn.host.get().unwrap().policy.get().unwrap().as_ref(),
                Some(&kept),
                "made once, for the first host"
            );
        }
        let (other, gateways) = policy_of("t-b.eu1.example.org");
        let other = other.expect("a policy");
        assert_eq!(Some(&other), gateways.as_ref());
        assert!(other.to_str().unwrap().contains("static.eu1.example.org;"));
        assert_eq!(
            other.as_bytes().as_ptr(),
            gateways.unwrap().as_bytes().as_ptr(),
            "another host's is the gateway's own"
        );
    }
}
