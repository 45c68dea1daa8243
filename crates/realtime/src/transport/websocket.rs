//! The WebSocket handshake at `base`: a version-13 upgrade request is answered `101` and
//! the connection, once hyper hands it over (`OnUpgrade`, which the gateway passes through
//! to in-process services), becomes a Bayeux socket (`socket.rs`).
//!
//! Built on hyper's upgrade and tokio-tungstenite (as the relay's sockets are) rather than
//! axum's `ws` extractor: one WebSocket implementation in the binary, with its limits
//! (message size, read buffer) set in one place.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::error::TransportError;
use super::{incoming, socket, Endpoint};
use crate::bayeux::ConnectionType;

/// The read buffer each socket keeps: Bayeux frames are small, and thousands of idle
/// devices each holding WebSocket's default (128 KiB) would add up.
const READ_BUFFER: usize = 4 * 1024;

/// Whether the request asks for a WebSocket (`Upgrade: websocket`); such a request gets
/// the handshake or a 400 saying what is wrong with it, never a poll's answer.
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, header::UPGRADE, "websocket")
}

/// Answers the handshake and serves the socket once the connection is handed over.
pub(super) fn upgrade(endpoint: Endpoint, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let accept = match accept_key(&parts.headers) {
        Ok(accept) => accept,
        Err(error) => return error.into_response(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return TransportError::BadHandshake(
            "this connection cannot be upgraded to a WebSocket (HTTP/1.1 is needed)",
        )
        .into_response();
    };
    let incoming = incoming(&parts, ConnectionType::WebSocket);
    let config = WebSocketConfig::default()
        .max_message_size(Some(endpoint.options.max_body))
        .max_frame_size(Some(endpoint.options.max_body))
        .read_buffer_size(READ_BUFFER);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "notification socket upgrade failed");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let limits = socket::Limits::of(&endpoint);
        socket::serve(ws, endpoint.bayeux, incoming, limits).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The `Sec-WebSocket-Accept` of a valid version-13 handshake.
fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, TransportError> {
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(TransportError::BadHandshake(
            "`Connection: upgrade` is missing",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err(TransportError::BadHandshake(
            "only WebSocket version 13 is served",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(TransportError::BadHandshake(
            "`Sec-WebSocket-Key` is missing",
        ))?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| TransportError::BadHandshake("`Sec-WebSocket-Key` is not valid"))
}

/// Whether a comma-separated header lists `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
