//! The relay's two WebSockets on `wss.{region}.vpnrts.{domain}` (GW-6), as the in-process
//! service `relay`: `/mts/` carries an endpoint's tunnel (binary messages of tunnel
//! frames), `/ccf/` its control channel (text messages, one control message each). Lanes
//! (`/mts/lane/open`, `/mts/lane/dial`) come as WebSockets or as framed lanes
//! (`portico_tunnel::lane::framed`), which the tunnel's `101` offers.
//!
//! Before the upgrade the endpoint is authenticated from its bearer token alone (the
//! client-credentials token: `sub` is the OAuth client, `ten` the tenant): no or a bad
//! token is 401, a token of a client that is not a registered endpoint of its tenant 403.

use bytes::Bytes;
use futures_util::{future, Sink, SinkExt, Stream, StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use portico_gateway::body::Body;
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_identity::Identity;
use portico_relay::live::{ControlHub, LaneRefusal};
use portico_store::{EndpointRecord, Store};
use portico_tunnel::lane::framed::{self, FramedLane};
use portico_tunnel::lane::{self, LaneUse};
use std::convert::Infallible;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The name of the relay among the in-process services (the gateway sends `/ccf/` and
/// `/mts/` of the `wss` host there).
pub const RELAY_SERVICE: &str = "relay";

/// Which of the two sockets a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    Tunnel,
    Control,
    /// One stream on a WebSocket of its own (`/mts/lane/open`, `/mts/lane/dial`).
    Lane(LaneUse),
}

#[derive(Clone)]
struct Sockets {
    identity: Identity,
    store: Store,
    hub: ControlHub,
}

/// The relay's sockets as an in-process target.
pub fn service(identity: Identity, store: Store, hub: ControlHub) -> Arc<dyn InProcess> {
    let sockets = Sockets {
        identity,
        store,
        hub,
    };
    from_tower(tower::service_fn(move |request: Request<Body>| {
        let sockets = sockets.clone();
        async move { Ok::<_, Infallible>(sockets.handle(request).await) }
    }))
}

impl Socket {
    /// What one message may weigh: an endpoint is authenticated but not trusted, and
    /// WebSocket's own defaults (64 MiB) would let it make the relay buffer far more than
    /// any honest message. A tunnel message packs frames of at most `MAX_MAX_FRAME` up to
    /// the sender's `max_message` (256 KiB by default); a control message is at most
    /// `MAX_CONTROL_MESSAGE`.
    ///
    /// And the read buffer each socket keeps: WebSocket's default, 128 KiB, is written over
    /// at every read and so stays resident, for every one of thousands of idle endpoints.
    /// Control messages are small; tunnel messages are read in 32 KiB pieces (measured: no
    /// loss of bulk throughput, `bench/tunnel`).
    fn limits(self) -> WebSocketConfig {
        let (largest, read_buffer) = match self {
            Socket::Tunnel => (portico_tunnel::frame::MAX_TRANSPORT_MESSAGE, 32 * 1024),
            // One frame per message; read in 64 KiB pieces: a lane is there for bulk.
            Socket::Lane(_) => (
                portico_tunnel::frame::HEADER_LEN + lane::LANE_MAX_FRAME as usize,
                64 * 1024,
            ),
            Socket::Control => (portico_tunnel::control::MAX_CONTROL_MESSAGE, 4 * 1024),
        };
        WebSocketConfig::default()
            .max_message_size(Some(largest))
            .max_frame_size(Some(largest))
            .read_buffer_size(read_buffer)
    }
}

fn socket_of(path: &str) -> Option<Socket> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
    };
    if let Some(use_) = [LaneUse::Open, LaneUse::Dial].into_iter().find(|u| {
        path == u.path()
            || path
                .strip_prefix(u.path())
                .is_some_and(|r| r.starts_with('?'))
    }) {
        Some(Socket::Lane(use_))
    } else if under("/mts") {
        Some(Socket::Tunnel)
    } else if under("/ccf") {
        Some(Socket::Control)
    } else {
        None
    }
}

fn answer(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the request asks for a framed lane: `Connection: upgrade` and the upgrade to
/// [`framed::PROTOCOL`] (and no WebSocket's, which it would otherwise be answered as).
fn asks_framed_lane(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, framed::PROTOCOL)
        && !has(header::UPGRADE, "websocket")
}

/// The `Sec-WebSocket-Accept` of a version-13 handshake, if the request is one.
fn accept_key(headers: &HeaderMap) -> Option<String> {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    version_ok.then(|| derive_accept_key(key.as_bytes()))
}

impl Sockets {
    async fn handle(&self, mut request: Request<Body>) -> Response<Full<Bytes>> {
        let Some(socket) = socket_of(request.uri().path()) else {
            return answer(StatusCode::NOT_FOUND, "The relay serves /mts/ and /ccf/");
        };
        // A lane may come as a framed lane instead of a WebSocket (docs/tunnel.md "Lanes").
        let framed = matches!(socket, Socket::Lane(_)) && asks_framed_lane(request.headers());
        let accept = match framed {
            true => None,
            false => match accept_key(request.headers()) {
                Some(accept) => Some(accept),
                None => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        "A WebSocket handshake (version 13) is expected here",
                    )
                }
            },
        };
        let endpoint = match self.authenticate(request.headers()).await {
            Ok(endpoint) => endpoint,
            Err(refusal) => return refusal,
        };
        // A lane is joined on the node that holds the endpoint's tunnel. Refusing it before
        // the upgrade (rather than closing it after) means an agent never keeps a spare lane
        // that cannot carry a stream; in a cluster whose balancer sent it elsewhere, or for an
        // endpoint at its maximum of lanes, the agent's streams use the tunnel.
        if matches!(socket, Socket::Lane(_)) {
            let welcome = self
                .hub
                .relay()
                .lane_welcome(&endpoint.tenant, &endpoint.name);
            match welcome {
                Ok(()) => {}
                Err(LaneRefusal::AtMaximum) => {
                    return answer(
                        StatusCode::TOO_MANY_REQUESTS,
                        "This endpoint holds its maximum of lanes; its streams use the tunnel",
                    )
                }
                Err(LaneRefusal::TunnelElsewhere) => return answer(
                    StatusCode::MISDIRECTED_REQUEST,
                    "This endpoint's tunnel is not on this relay node; its streams use the tunnel",
                ),
            }
        }
        // The agent moves streams from the tunnel to lanes (docs/tunnel.md).
        let moves = request
            .headers()
            .get(lane::MOVES_OFFERED)
            .is_some_and(|v| v == "1");
        let address = request
            .extensions()
            .get::<RequestContext>()
            .map(|c| c.client.to_string())
            .unwrap_or_default();
        let upgrade = hyper::upgrade::on(&mut request);
        let hub = self.hub.clone();
        tokio::spawn(async move {
            let upgraded = match upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "relay socket upgrade failed");
                    return;
                }
            };
            let io = TokioIo::new(upgraded);
            if let (Socket::Lane(use_), true) = (socket, framed) {
                // Bytes read ahead of the upgrade stay inside `Upgraded`: none are lost.
                let lane = FramedLane::new(io, Bytes::new());
                let (tenant, name) = (endpoint.tenant.as_str(), endpoint.name.as_str());
                hub.relay().lane(tenant, name, use_, Box::pin(lane)).await;
                return;
            }
            let ws =
                WebSocketStream::from_raw_socket(io, Role::Server, Some(socket.limits())).await;
            match socket {
                Socket::Tunnel => run_tunnel(hub, endpoint, address, ws, moves).await,
                Socket::Control => run_control(hub, endpoint, ws).await,
                Socket::Lane(use_) => run_lane(hub, endpoint, use_, ws).await,
            }
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        match accept.and_then(|accept| HeaderValue::from_str(&accept).ok()) {
            Some(accept) => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            None => {
                headers.insert(header::UPGRADE, HeaderValue::from_static(framed::PROTOCOL));
            }
        }
        if socket == Socket::Tunnel {
            headers.insert(lane::LANES_OFFERED, HeaderValue::from_static("1"));
            headers.insert(framed::OFFERED, HeaderValue::from_static("1"));
            // Only to an agent that moves streams too: both sides agree, or neither moves.
            if moves {
                headers.insert(lane::MOVES_OFFERED, HeaderValue::from_static("1"));
            }
        }
        response
    }

    /// The registered endpoint the bearer token belongs to, or the refusal.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<EndpointRecord, Response<Full<Bytes>>> {
        let Some(token) = bearer(headers) else {
            return Err(answer(
                StatusCode::UNAUTHORIZED,
                "Send the endpoint's access token (Authorization: Bearer)",
            ));
        };
        let token = self.identity.verify(token).map_err(|error| {
            tracing::info!(%error, "relay socket refused: bad token");
            answer(StatusCode::UNAUTHORIZED, "The access token is not valid")
        })?;
        // The client may be the endpoint's current one or the pending one of a rotation not
        // confirmed yet: both work until the endpoint confirms, so a rotation never locks it out.
        match self
            .store
            .endpoint_by_client(&token.tenant, &token.subject)
            .await
        {
            Ok(Some((endpoint, _))) => Ok(endpoint),
            Ok(None) => {
                tracing::info!(tenant = %token.tenant, client = %token.subject, "relay socket refused: not a registered endpoint");
                Err(answer(
                    StatusCode::FORBIDDEN,
                    "These credentials are not those of a registered endpoint",
                ))
            }
            Err(error) => {
                tracing::error!(%error, "relay socket: the store failed");
                Err(answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The relay cannot check endpoints now; try again",
                ))
            }
        }
    }
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A socket's binary messages as a stream and sink of `Bytes`: pings and pongs are the
/// WebSocket layer's own, a text message is an error, a close ends it.
fn binary_messages(
    ws: Ws,
) -> impl Stream<Item = Result<Bytes, WsError>> + Sink<Bytes, Error = WsError> + Send {
    ws.with(|bytes: Bytes| future::ready(Ok::<_, WsError>(Message::Binary(bytes))))
        .filter_map(|message| {
            future::ready(match message {
                Ok(Message::Binary(bytes)) => Some(Ok(bytes)),
                Ok(Message::Text(_)) => Some(Err(WsError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a text message where binary messages are expected",
                )))),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {
                    None
                }
                Err(error) => Some(Err(error)),
            })
        })
}

/// `/mts/`: binary messages are the tunnel's transport.
async fn run_tunnel(
    hub: ControlHub,
    endpoint: EndpointRecord,
    address: String,
    ws: Ws,
    moves: bool,
) {
    let (tenant, name) = (endpoint.tenant.as_str(), endpoint.name.as_str());
    let transport = binary_messages(ws);
    let attached = hub
        .relay()
        .attach(tenant, name, &address, transport, moves)
        .await;
    if let Err(error) = attached {
        tracing::info!(tenant, endpoint = name, %error, "tunnel refused");
    }
}

/// `/mts/lane/…`: binary messages, one lane frame each.
async fn run_lane(hub: ControlHub, endpoint: EndpointRecord, use_: LaneUse, ws: Ws) {
    let io_error = |error: WsError| std::io::Error::other(error.to_string());
    let transport = binary_messages(ws).sink_map_err(io_error).map_err(io_error);
    let (tenant, name) = (endpoint.tenant.as_str(), endpoint.name.as_str());
    hub.relay()
        .lane(tenant, name, use_, Box::pin(transport))
        .await;
}

/// `/ccf/`: text messages, one control message each.
async fn run_control(hub: ControlHub, endpoint: EndpointRecord, ws: Ws) {
    let (sink, stream) = ws.split();
    let outbound = sink.with(|text: String| future::ready(Ok::<_, WsError>(Message::text(text))));
    let inbound = stream.filter_map(|message| {
        future::ready(match message {
            Ok(Message::Text(text)) => Some(Ok(text.to_string())),
            // A binary message is not a control message; the hub refuses it as malformed.
            Ok(Message::Binary(_)) => Some(Ok(String::new())),
            Ok(_) => None,
            Err(error) => Some(Err(error)),
        })
    });
    let (tenant, name) = (endpoint.tenant.as_str(), endpoint.name.as_str());
    match hub.serve(tenant, name, inbound, outbound).await {
        Ok(end) => tracing::debug!(tenant, endpoint = name, ?end, "control channel ended"),
        Err(error) => tracing::info!(tenant, endpoint = name, %error, "control channel failed"),
    }
}
