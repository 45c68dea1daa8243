//! The forwarding phase: a routed and authorised request goes to its target, a backend
//! over HTTP or an in-process service, with its body held to the size limits (GW-13)
//! and its endpoint to greylisting (GW-14).

use super::{clientless, ConnInfo, Dispatch, Gateway};
use crate::auth::enforce::Guard;
use crate::auth::session_watch::SessionLink;
use crate::auth::Caller;
use crate::body::Body;
use crate::config::GreylistConfig;
use crate::error::GatewayError;
use crate::greylist::Admission;
use crate::limits::{limit_request, Exceeded};
use crate::proxy::{set_forwarding_headers, strip_hop_by_hop, Forwarding};
use crate::service::RequestContext;
use crate::table::Target;
use futures_util::future::Either;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use std::borrow::Cow;
use std::future::Future;

/// The path and query a target gets after its base path.
pub(super) enum TargetPath {
    /// The request's own, as the client sent it: most routes, and shared rather than
    /// copied on its way to the backend.
    AsSent,
    /// Written by the route: an API call's endpoint and query.
    Rewritten(String),
}

impl TargetPath {
    /// The path and query, of the request whose URI is `sent`.
    pub(super) fn as_str<'a>(&'a self, sent: &'a Uri) -> &'a str {
        match self {
            TargetPath::AsSent => sent.path_and_query().map_or("/", PathAndQuery::as_str),
            TargetPath::Rewritten(path) => path,
        }
    }
}

impl Gateway {
    /// The forwarding phase: to a backend over HTTP, or to an in-process service, for
    /// `caller` when the authorisation phase knows them, with the request's body held to
    /// the size limits in force (GW-13). A declared length over the limit is refused
    /// before any backend is contacted; a body that passes a limit while streaming fails,
    /// and whatever the target made of that, the client is answered 413.
    // Not an `async fn`, for the reason given at `handle`.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn forward<'a>(
        &'a self,
        mut request: Request<Body>,
        mut dispatch: Dispatch,
        caller: Option<Caller>,
        conn: &'a ConnInfo,
        request_id: &'a HeaderValue,
        (original_host, host): (&'a HeaderValue, &'a str),
    ) -> impl Future<Output = Result<Response<Body>, GatewayError>> + Send + 'a {
        async move {
            self.identify_caller(request.headers_mut(), &dispatch, caller.as_ref())?;
            let web = dispatch.web.take();
            let device_web = matches!(dispatch.guard, Guard::DeviceWeb);
            let refuse = |exceeded: Exceeded| {
                self.inner.metrics.body_refused(exceeded.reason());
                exceeded.error()
            };
            // Read through the configuration's guard and let go before the exchange: an
            // `Arc` of it held across the exchange, as `config()` gives, writes a count
            // that every core shares, once at the clone and once at the drop.
            let (tripwire, settings);
            {
                let config = self.inner.config.load();
                (request, tripwire) = limit_request(request, &config).map_err(refuse)?;
                settings = config.greylist.clone();
            }
            let fwd = Forwarding {
                client_ip: conn.client.ip(),
                tls: conn.tls,
                original_host,
                host,
                request_id,
                made: Some(&conn.forwarding),
            };
            // Matched in place: the target is shared with every core, and a clone of its
            // `Arc` for the match wrote its count on each request.
            let result = match &*dispatch.target {
                Target::Http {
                    scheme,
                    authority,
                    base_path,
                    host,
                    endpoint,
                } => {
                    let uri =
                        backend_uri(scheme, authority, base_path, &dispatch.path, request.uri())?;
                    let settings = &settings;
                    self.admit_to_endpoint(endpoint, settings)?;
                    let proxy = self.inner.proxy.load_full();
                    let exchange = if dispatch.upgrade {
                        let session = self.session_link(caller);
                        Either::Left(Box::pin(crate::websocket::forward(
                            self, &proxy, request, uri, host, &fwd, session,
                        )))
                    } else {
                        Either::Right(proxy.forward(request, uri, host, &fwd))
                    };
                    let exchange = std::pin::pin!(exchange);
                    let give_up = (proxy.response_timeout(), || proxy.timed_out());
                    self.inner
                        .greylist
                        .time(endpoint, settings, || self.load(), give_up, exchange)
                        .await
                }
                Target::InProcess(name) => {
                    let name: Box<str> = name.as_str().into();
                    let call = self.call_in_process(&name, request, dispatch, caller, conn, &fwd);
                    Box::pin(call).await
                }
            };
            let mut response = match tripwire.and_then(|t| t.get()) {
                Some(exceeded) => return Err(refuse(exceeded)),
                None => result?,
            };
            if device_web {
                clientless::harden_device_cookies(response.headers_mut());
            }
            if let Some(web) = web {
                if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                    web.apply(response.headers_mut());
                }
            }
            Ok(response)
        }
    }

    /// What the target learns of the caller (ID-4, [`crate::auth::forwarded`]): never
    /// Portico's session secrets, and on an authenticated registration a token minted
    /// for the caller and the target. The identity service gets the request as it came.
    fn identify_caller(
        &self,
        headers: &mut HeaderMap,
        dispatch: &Dispatch,
        caller: Option<&Caller>,
    ) -> Result<(), GatewayError> {
        let rule = match &dispatch.guard {
            Guard::Registration { rule, .. } => rule,
            // A device's web interface: the device's own `Authorization` passes unchanged.
            Guard::DeviceWeb => {
                crate::auth::forwarded::strip_secrets(headers);
                return Ok(());
            }
            Guard::IdentityCore => return Ok(()),
        };
        crate::auth::forwarded::strip_secrets(headers);
        match (caller, self.inner.authenticator.as_deref()) {
            (Some(caller), Some(authenticator)) if !rule.is_open() => {
                crate::auth::forwarded::identify(headers, authenticator, caller, &rule.audience)
            }
            _ => Ok(()),
        }
    }

    /// Hands the request to the in-process service `name`, with what the gateway knows of
    /// it in a [`RequestContext`].
    async fn call_in_process(
        &self,
        name: &str,
        request: Request<Body>,
        dispatch: Dispatch,
        caller: Option<Caller>,
        conn: &ConnInfo,
        fwd: &Forwarding<'_>,
    ) -> Result<Response<Body>, GatewayError> {
        let service = self
            .inner
            .services
            .get(name)
            .ok_or_else(|| {
                GatewayError::new(
                    StatusCode::BAD_GATEWAY,
                    "The in-process service is not available",
                )
            })?
            .clone();
        let original_target = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers, dispatch.upgrade);
        set_forwarding_headers(&mut parts.headers, fwd);
        parts.uri = dispatch
            .path
            .as_str(&parts.uri)
            .parse()
            .map_err(|_| GatewayError::bad_request("The request target cannot be forwarded"))?;
        parts.extensions.insert(RequestContext {
            request_id: fwd.request_id().to_string(),
            client: conn.client,
            tls: conn.tls,
            // The routing phase parsed this host already; it cannot fail here.
            host: conn
                .parsed_host(fwd.host, &self.inner.hosts)
                .map(Cow::into_owned)
                .ok_or_else(|| GatewayError::not_found("Unknown host"))?,
            original_host: fwd.host.to_string(),
            original_target,
            tenant: dispatch.tenant,
            session: caller.as_ref().and_then(|c| c.session.clone()),
            principal: caller.map(|c| c.principal),
        });
        let mut response = service.call(Request::from_parts(parts, body)).await;
        response
            .headers_mut()
            .insert(crate::REQUEST_ID, fwd.request_id.clone());
        Ok(response)
    }

    /// The session a WebSocket is opened in, which it keeps alive and which closes it (GW-23).
    fn session_link(&self, caller: Option<Caller>) -> Option<SessionLink> {
        let caller = caller?;
        Some(SessionLink {
            authenticator: self.inner.authenticator.clone()?,
            session: caller.session?,
            tenant: caller.principal.tenant,
        })
    }

    /// Greylisting (GW-14): a slow endpoint gets requests only while the instance is
    /// not busy.
    fn admit_to_endpoint(
        &self,
        endpoint: &str,
        settings: &GreylistConfig,
    ) -> Result<(), GatewayError> {
        match self
            .inner
            .greylist
            .admit(endpoint, || self.load(), settings)
        {
            Admission::Forward => Ok(()),
            Admission::Refuse { retry_after } => Err(GatewayError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Backend service is too slow",
            )
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            )),
        }
    }

    /// The share of `max_connections` in use now (GW-14's instance load).
    fn load(&self) -> f64 {
        // Read through the configuration's guard: a clone of its `Arc`, as `config()`
        // makes, writes a count that every core shares.
        let limit = self.inner.config.load().max_connections;
        if limit == 0 {
            return 1.0;
        }
        let free = self.inner.connections.available_permits();
        limit.saturating_sub(free) as f64 / limit as f64
    }
}

/// The backend's URI for a request whose URI is `sent`: the target's base path with
/// `path` appended, behind the target's scheme and authority as parsed when the routing
/// table was made.
fn backend_uri(
    scheme: &Scheme,
    authority: &Authority,
    base_path: &str,
    path: &TargetPath,
    sent: &Uri,
) -> Result<Uri, GatewayError> {
    let cannot = || GatewayError::bad_request("The request target cannot be forwarded");
    let path_and_query = match (base_path, path, sent.path_and_query()) {
        // The client's own path, behind no base path: shared, not copied.
        ("", TargetPath::AsSent, Some(sent)) if sent.as_str().starts_with('/') => sent.clone(),
        _ => {
            let path = path.as_str(sent);
            // A target without a leading slash (a bare query of an absolute-form
            // request) goes behind the root when there is no base path.
            let joined = match base_path {
                "" if path.starts_with('/') => path.to_string(),
                "" => "/".to_string() + path,
                base => base.to_string() + path,
            };
            // From a `String`, the path takes over its buffer.
            PathAndQuery::from_maybe_shared(bytes::Bytes::from(joined)).map_err(|_| cannot())?
        }
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|_| cannot())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &str = "/sent?by=client";

    /// The backend URI for a route that rewrote the path to `path`.
    fn uri(base_path: &str, path: &str) -> String {
        let authority = Authority::from_static("127.0.0.1:9001");
        let path = TargetPath::Rewritten(path.to_string());
        backend_uri(
            &Scheme::HTTP,
            &authority,
            base_path,
            &path,
            &Uri::from_static(SENT),
        )
        .unwrap()
        .to_string()
    }

    /// The backend URI for a request whose target was `sent`, forwarded as it came.
    fn uri_as_sent(base_path: &str, sent: &str) -> String {
        let authority = Authority::from_static("127.0.0.1:9001");
        let sent: Uri = sent.parse().unwrap();
        backend_uri(
            &Scheme::HTTP,
            &authority,
            base_path,
            &TargetPath::AsSent,
            &sent,
        )
        .unwrap()
        .to_string()
    }

    #[test]
    fn the_backend_uri_joins_base_path_and_request_target() {
        assert_eq!(uri("", "/a/b?c=d"), "http://127.0.0.1:9001/a/b?c=d");
        assert_eq!(uri("/base", "/a?c"), "http://127.0.0.1:9001/base/a?c");
        assert_eq!(uri("/base", "?c"), "http://127.0.0.1:9001/base?c");
        assert_eq!(uri("", "?c"), "http://127.0.0.1:9001/?c");
        assert_eq!(uri("", ""), "http://127.0.0.1:9001/");
        assert_eq!(uri("/base", ""), "http://127.0.0.1:9001/base");
    }

    #[test]
    fn the_clients_own_target_goes_behind_the_base_path() {
        assert_eq!(uri_as_sent("", "/a/b?c=d"), "http://127.0.0.1:9001/a/b?c=d");
        assert_eq!(
            uri_as_sent("/base", "/a?c"),
            "http://127.0.0.1:9001/base/a?c"
        );
        // Absolute form: the client's authority stays behind.
        assert_eq!(
            uri_as_sent("", "http://demo.example/a?c"),
            "http://127.0.0.1:9001/a?c"
        );
        assert_eq!(
            uri_as_sent("", "http://demo.example"),
            "http://127.0.0.1:9001/"
        );
    }

    #[test]
    fn a_target_that_is_no_uri_path_is_a_bad_request() {
        let authority = Authority::from_static("127.0.0.1:9001");
        let path = TargetPath::Rewritten("/a b".to_string());
        let refused = backend_uri(
            &Scheme::HTTP,
            &authority,
            "",
            &path,
            &Uri::from_static(SENT),
        );
        assert!(refused.is_err());
    }
}
