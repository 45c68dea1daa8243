//! The WebSocket upgrade on the tunnel host's `/ccf/`, without a token: the relay answers
//! `401`, which proves that the upgrade request crossed every box on the way and reached it.
//! A `101` (an open socket) proves the same. Anything else is explained.

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::report::{Check, Sink};
use super::route::STEP_TIMEOUT;
use crate::config::BackendUrl;
use crate::link::CONTROL_PATH;

/// Tries the upgrade and reports it; true when the relay was reached.
pub async fn upgrade(url: &BackendUrl, tls: TlsStream<TcpStream>, sink: &mut dyn Sink) -> bool {
    let address = url.websocket_url(CONTROL_PATH);
    let what = format!("websocket {address}");
    let request = match address.as_str().into_client_request() {
        Ok(request) => request,
        Err(error) => {
            sink.check(Check::fail(what, error.to_string(), "correct `backend`"));
            return false;
        }
    };
    let answer =
        tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::client_async(request, tls)).await;
    let check = match answer {
        Ok(Ok((mut socket, _))) => {
            let _ = socket.close(None).await;
            Check::ok(what, "upgraded (101 Switching Protocols)")
        }
        Ok(Err(tungstenite::Error::Http(response)))
            if response.status() == StatusCode::UNAUTHORIZED =>
        {
            Check::ok(
                what,
                "the relay answered 401 to a request without a token: WebSocket upgrades \
                 reach it",
            )
        }
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            let found = match status {
                StatusCode::FORBIDDEN | StatusCode::PROXY_AUTHENTICATION_REQUIRED => format!(
                    "answered {status}: something on the way (a proxy or web filter) refuses \
                     WebSocket upgrades"
                ),
                StatusCode::NOT_FOUND => format!(
                    "answered {status}: the host does not serve the tunnel (is `backend` the \
                     tunnel host?)"
                ),
                _ => format!("answered {status} instead of upgrading"),
            };
            Check::fail(
                what,
                found,
                format!(
                    "ask IT to allow WebSocket Secure (WSS) upgrades to {} (no filtering of \
                     the Upgrade header)",
                    url.host()
                ),
            )
        }
        Ok(Err(error)) => Check::fail(
            what,
            format!("the upgrade failed: {error}"),
            format!(
                "ask IT to allow WebSocket Secure (WSS) to {}; a box on the way ends the \
                 connection",
                url.host()
            ),
        ),
        Err(_) => Check::fail(
            what,
            format!("no answer within {} s", STEP_TIMEOUT.as_secs()),
            format!("ask IT to allow WebSocket Secure (WSS) to {}", url.host()),
        ),
    };
    let reached = !check.failed();
    sink.check(check);
    reached
}
