//! Clientless browser access (RS-10): a connection session of an `http` or `https`
//! application opens in the browser at `{tenant}-remote-{id}.{region}.{domain}`. The
//! gateway authenticates the browser's session and hands each request here with the
//! caller; this module checks the caller may use the session ([`access`]), opens a stream
//! on the device's Device Endpoint to the application's first mapping, the way a joined
//! stream dials it (the agent accepts it under the session's permit), and proxies the
//! request over it ([`proxy`]). Bytes count for the session ([`metered`]); when the session
//! ends, its streams are cut ([`cuts`]).
//!
//! - [`access`]: who may open which session, and where it goes;
//! - [`proxy`]: HTTP/1.1 and WebSocket upgrades over the stream;
//! - [`tls`]: TLS to device web servers, without certificate verification;
//! - [`metered`]: byte counts into the session;
//! - [`cuts`]: ending the streams of ended sessions.

pub mod access;
pub mod cuts;
pub mod metered;
pub mod proxy;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use portico_store::Store;

pub use access::{ClientlessError, WebTarget};
pub use proxy::{BoxError, ProxyBody, SignedOut};

use super::control::ControlHub;
use super::reach::ReachError;
use super::relay::Relay;
use super::target::dial_target;
use crate::api::Clock;
use cuts::Cuts;
use metered::Metered;

/// The app label of clientless hosts: `{tenant}-remote-{connection id}`.
pub const REMOTE_APP: &str = "remote";

/// Who asks for which session's web interface, and where the browser is.
#[derive(Debug, Clone)]
pub struct WebRequest<'a> {
    pub tenant: &'a str,
    /// The signed-in user.
    pub user: &'a str,
    /// The connection session's id, from the host name.
    pub session: &'a str,
    /// The Portico host's origin as the browser addressed it.
    pub own_origin: &'a str,
}

/// The clientless service; cheap to clone.
#[derive(Clone)]
pub struct Clientless {
    store: Store,
    relay: Arc<Relay>,
    clock: Clock,
    cuts: Arc<Cuts>,
}

impl Clientless {
    /// The service over the hub's relay; it hears the hub's session reports and rereads its
    /// sessions every `recheck` besides. Call inside a Tokio runtime.
    pub fn new(store: Store, hub: &ControlHub, clock: Clock, recheck: Duration) -> Clientless {
        let cuts = Arc::new(Cuts::default());
        cuts::watch(
            Arc::downgrade(&cuts),
            store.clone(),
            clock.clone(),
            hub.session_changes(),
            recheck,
        );
        Clientless {
            store,
            relay: hub.relay().clone(),
            clock,
            cuts,
        }
    }

    /// Answers one browser request: the device's answer, or a page saying why not. A
    /// WebSocket opened by it also closes when `signed_out` resolves (GW-23).
    pub async fn serve<B>(
        &self,
        web: WebRequest<'_>,
        request: Request<B>,
        signed_out: Option<SignedOut>,
    ) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match self.try_serve(&web, request, signed_out).await {
            Ok(response) => response,
            Err(error) => {
                tracing::info!(
                    tenant = web.tenant,
                    user = web.user,
                    session = web.session,
                    %error,
                    "clientless request not served"
                );
                error_page(&error)
            }
        }
    }

    async fn try_serve<B>(
        &self,
        web: &WebRequest<'_>,
        request: Request<B>,
        signed_out: Option<SignedOut>,
    ) -> Result<Response<ProxyBody>, ClientlessError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let now = (self.clock)();
        let target =
            access::web_target(&self.store, web.tenant, web.user, web.session, now).await?;
        // On this node, or over the link to the node that holds the endpoint's tunnel.
        let stream = self
            .relay
            .open_stream(
                web.tenant,
                &target.endpoint,
                &dial_target(&target.host, target.port),
            )
            .await
            .map_err(|e| match e {
                ReachError::Offline(endpoint) => ClientlessError::Offline(endpoint),
                other => ClientlessError::Device(other.to_string()),
            })?;
        // Taken after the check: a session ended in between is cut by the next recheck.
        let cut = self.cuts.token(web.tenant, &target.session.id);
        let stream = Metered::new(stream, self.store.clone(), web.tenant, &target.session.id);
        proxy::forward(stream, &target, web.own_origin, request, cut, signed_out).await
    }

    /// How many sessions have clientless streams watched now.
    pub fn watched_sessions(&self) -> usize {
        self.cuts.watched_sessions()
    }
}

/// A small page that says why the device's web interface is not shown.
pub fn error_page(error: &ClientlessError) -> Response<ProxyBody> {
    let status = error.status();
    let title = match status.as_u16() {
        410 => "Connection ended",
        403 => "Not your connection",
        404 => "No such web interface",
        _ => "Device not reachable",
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title} · Portico</title></head>\n<body><main><h1>{title}</h1>\n\
         <p>{}</p></main></body></html>\n",
        escape(&error.to_string())
    );
    let mut response = Response::new(
        Full::new(Bytes::from(html))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_is_a_gone_page() {
        let response = error_page(&ClientlessError::Ended("ab12".into()));
        assert_eq!(response.status(), http::StatusCode::GONE);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
