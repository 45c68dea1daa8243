//! The Bayeux transports (DC-2, DC-3): how messages reach a notification endpoint's
//! engine ([`Bayeux`]) and how its replies go back.
//!
//! - long-polling: `POST base` (and `base/handshake|connect|subscribe|unsubscribe|disconnect`)
//!   with a JSON body, or a form body `message=<json>`;
//! - callback-polling (JSONP): `GET base?message=<json>&jsonp=<callback>`, or a form `POST`
//!   with `jsonp`, answered `callback([...]);`;
//! - WebSocket: an upgrade at `base`, one request per text frame.
//!
//! The transports hold no Bayeux state of their own: everything a client has lives in the
//! engine, so a client may switch connections (or transports) freely.

mod error;
mod polling;
mod request;
mod socket;
mod websocket;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header;
use http::request::Parts;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::bayeux::{Bayeux, ConnectionType, Incoming};
use crate::ClientAddr;

/// The suffixes some clients (CometD's `appendMessageTypeToURL`) append to the endpoint's
/// path; each is handled exactly like the endpoint itself.
const MESSAGE_TYPE_SUFFIXES: [&str; 5] = [
    "handshake",
    "connect",
    "subscribe",
    "unsubscribe",
    "disconnect",
];

/// How long the transports wait for the engine beyond its longest hold, before giving up
/// on a request: a safety net only, the engine answers held connects well before.
const ENGINE_SLACK: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// How often the server pings each WebSocket; one silent for two intervals is closed.
    pub ws_ping_interval: Duration,
    /// The largest request body (or WebSocket message, or callback-polling query) accepted.
    pub max_body: usize,
}

impl Default for TransportOptions {
    fn default() -> TransportOptions {
        TransportOptions {
            ws_ping_interval: Duration::from_secs(30),
            max_body: 1024 * 1024,
        }
    }
}

/// What every handler needs: the endpoint's engine and the transports' limits.
#[derive(Clone)]
struct Endpoint {
    bayeux: Bayeux,
    options: TransportOptions,
}

impl Endpoint {
    /// The longest the transports wait for one request's replies.
    fn engine_deadline(&self) -> Duration {
        self.bayeux.max_hold() + ENGINE_SLACK
    }
}

/// The routes of one notification endpoint at `base` (e.g. `/notification/operations`,
/// without a trailing slash).
pub fn router(base: &'static str, bayeux: Bayeux, options: TransportOptions) -> Router {
    let endpoint = Endpoint { bayeux, options };
    // CometD clients append the message type to the URL, and an empty one (a batch of
    // several types) as a bare trailing slash.
    let mut router = Router::new()
        .route(base, get(at_base).post(polling::post))
        .route(&format!("{base}/"), get(at_base).post(polling::post));
    for suffix in MESSAGE_TYPE_SUFFIXES {
        router = router.route(
            &format!("{base}/{suffix}"),
            get(polling::get).post(polling::post),
        );
    }
    router.with_state(endpoint)
}

/// `GET base`: a WebSocket upgrade, or a callback-polling request.
async fn at_base(State(endpoint): State<Endpoint>, request: Request) -> Response {
    if websocket::is_upgrade(request.headers()) {
        websocket::upgrade(endpoint, request)
    } else {
        polling::get(State(endpoint), request).await
    }
}

/// What the engine learns about the request its messages came in.
fn incoming(request: &Parts, connection_type: ConnectionType) -> Incoming {
    Incoming {
        authorization: request
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        client: request
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.0),
        connection_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::request::Builder) -> Parts {
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_engine_learns_the_callers_credentials_and_address() {
        let mut request =
            parts(http::Request::builder().header(header::AUTHORIZATION, "Basic dDEvdTpwdw=="));
        request
            .extensions
            .insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
        let incoming = incoming(&request, ConnectionType::CallbackPolling);
        assert_eq!(
            incoming.authorization.as_deref(),
            Some("Basic dDEvdTpwdw==")
        );
        assert_eq!(incoming.client, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(incoming.connection_type, ConnectionType::CallbackPolling);
    }

    #[test]
    fn without_an_address_the_caller_is_unspecified() {
        let incoming = incoming(&parts(http::Request::builder()), ConnectionType::WebSocket);
        assert_eq!(incoming.authorization, None);
        assert_eq!(incoming.client, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
