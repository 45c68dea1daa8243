//! WebSockets through the gateway (GW-21, GW-22, GW-24).
//!
//! A WebSocket upgrade on a route enabled for it is checked ([`handshake`]), then the
//! gateway opens its own upgrade to the backend and answers 101 only when the backend did,
//! and correctly. The two upgraded connections are then joined by a [`relay`] that copies
//! bytes untouched, tracked among the gateway's [`OpenWebSockets`] so that a shutdown
//! reaches each of them with a 1001 close and the drain waits for them. A WebSocket
//! opened in a session keeps it alive and closes with 1008 when it ends (GW-23).

pub mod frames;
pub mod handshake;
mod relay;
mod sides;

use crate::auth::session_watch::{session_over, SessionLink};
use crate::body::{empty, Body};
use crate::error::GatewayError;
use crate::metrics::RelayPath;
use crate::proxy::{finish, strip_hop_by_hop, Forwarding, Proxy};
use crate::Gateway;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use relay::{relay, RelaySettings, SessionWatch};
use sides::{BackendSide, ClientSide};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest wait for the close replies at shutdown, also when the drain allows more:
/// a peer that has not answered a close in this time will not.
const MAX_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The WebSockets the gateway relays now.
pub struct OpenWebSockets {
    tracker: TaskTracker,
    closing: CancellationToken,
}

impl Default for OpenWebSockets {
    fn default() -> Self {
        OpenWebSockets {
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
        }
    }
}

impl OpenWebSockets {
    /// Relays open now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Sends every open WebSocket, and any opened from now on, a 1001 close (GW-24).
    pub fn close_all(&self) {
        self.closing.cancel();
        self.tracker.close();
    }

    /// Waits until every relay has ended; only after [`OpenWebSockets::close_all`].
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }
}

/// Forwards a WebSocket upgrade request to `uri` on the backend whose `Host` is `host`.
///
/// A backend that refuses the upgrade (any answer but 101) has its answer passed on as it
/// is, like any other response: its 401, 403 or 404 means something to the client. A 101
/// that does not complete the handshake correctly is answered 502. `session` is the
/// session that authorised the WebSocket, if one did.
pub(crate) async fn forward(
    gateway: &Gateway,
    proxy: &Proxy,
    mut request: Request<Body>,
    uri: Uri,
    host: &HeaderValue,
    fwd: &Forwarding<'_>,
    session: Option<SessionLink>,
) -> Result<Response<Body>, GatewayError> {
    let client = handshake::check_request(request.method(), request.version(), request.headers())?;
    let client_upgrade = hyper::upgrade::on(&mut request);
    let mut response = proxy.send(request, uri, host, fwd, true).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(finish(response, fwd.request_id));
    }
    if let Err(problem) = handshake::check_response(&client, response.headers()) {
        tracing::warn!(
            request_id = fwd.request_id(),
            problem,
            "the WebSocket backend's 101 was not a valid handshake answer"
        );
        return Err(GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "The WebSocket backend did not complete the handshake correctly",
        ));
    }
    let backend_upgrade = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    // The backend's 101 goes to the client with its chosen subprotocol and extensions.
    strip_hop_by_hop(&mut parts.headers, true);
    parts
        .headers
        .insert(crate::REQUEST_ID, fwd.request_id.clone());

    let sockets = gateway.websockets();
    let closing = sockets.closing.clone();
    let gateway = gateway.clone();
    sockets.tracker.spawn(async move {
        let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) else {
            tracing::debug!("a WebSocket upgrade was abandoned by one side");
            return;
        };
        gateway.metrics().websocket_opened();
        let session = session.map(|link| {
            let activity = Arc::new(AtomicBool::new(false));
            let touch = gateway.config().session_touch_interval;
            SessionWatch {
                over: Box::pin(session_over(link, activity.clone(), touch)),
                activity,
            }
        });
        let settings = {
            let gateway = gateway.clone();
            move || {
                let config = gateway.config();
                RelaySettings {
                    ping_interval: config.websocket_ping_interval,
                    close_wait: config.drain_timeout.min(MAX_CLOSE_WAIT),
                }
            }
        };
        let (client, backend) = (ClientSide::client(client), BackendSide::backend(backend));
        let path = if client.is_unwrapped() && backend.is_unwrapped() {
            RelayPath::Direct
        } else {
            tracing::debug!(
                client = client.is_unwrapped(),
                backend = backend.is_unwrapped(),
                "a WebSocket side is relayed through hyper's upgrade layers"
            );
            RelayPath::Layered
        };
        gateway.metrics().websocket_relayed(path);
        relay(client, backend, closing, settings, session).await;
        gateway.metrics().websocket_closed();
    });
    Ok(Response::from_parts(parts, empty()))
}
