//! The demo web app `hello` of a fresh installation: a page that shows the request as a
//! backend behind Portico sees it, and a WebSocket echo at `/ws`. It is an in-process
//! service, so a newcomer sees routing work without starting a backend.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use portico_gateway::body::Body;
use portico_gateway::RequestContext;
use std::convert::Infallible;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// The demo as a tower service.
pub fn service(
) -> tower::util::BoxCloneSyncService<Request<Body>, Response<Full<Bytes>>, Infallible> {
    tower::util::BoxCloneSyncService::new(tower::service_fn(|request: Request<Body>| async move {
        Ok::<_, Infallible>(if request.uri().path() == "/ws" {
            websocket(request)
        } else {
            page(&request)
        })
    }))
}

fn page(request: &Request<Body>) -> Response<Full<Bytes>> {
    let context = request.extensions().get::<RequestContext>();
    let mut rows = String::new();
    for (name, value) in request.headers() {
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(name.as_str()),
            escape(&String::from_utf8_lossy(value.as_bytes()))
        ));
    }
    let tenant = context.and_then(|c| c.tenant.as_deref()).unwrap_or("-");
    let client = context.map_or_else(|| "-".to_string(), |c| c.client.to_string());
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello from Portico</title>
<style>body{{font-family:sans-serif;margin:2rem;max-width:60rem}}th{{text-align:left;padding-right:1rem;vertical-align:top}}td{{font-family:monospace;word-break:break-all}}</style>
</head><body>
<h1>Hello from Portico</h1>
<p>This page is the demo web app <code>hello</code> of tenant <code>{tenant}</code>. Portico routed your
request here by its host name; this is the request as a backend behind Portico receives it.</p>
<table>
<tr><th>method</th><td>{method}</td></tr>
<tr><th>path</th><td>{path}</td></tr>
<tr><th>client</th><td>{client}</td></tr>
{rows}</table>
<h2>WebSocket echo</h2>
<p><input id="msg" value="hello" aria-label="message"> <button id="send">Send</button> <span id="echo"></span></p>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send("hello from your browser");
ws.onmessage = (e) => {{ document.getElementById("echo").textContent = "echo: " + e.data; }};
document.getElementById("send").onclick = () => ws.send(document.getElementById("msg").value);
</script>
</body></html>
"#,
        method = escape(request.method().as_str()),
        path = escape(request.uri().to_string().as_str()),
        tenant = escape(tenant),
        client = escape(&client),
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Accepts a WebSocket handshake and echoes every message back.
fn websocket(mut request: Request<Body>) -> Response<Full<Bytes>> {
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = request
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let (Some(accept), true) = (key, version_ok) else {
        let mut response = Response::new(Full::new(Bytes::from_static(
            b"a WebSocket handshake (version 13) is expected here\n",
        )));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        use futures_util::{SinkExt, StreamExt};
        while let Some(Ok(message)) = socket.next().await {
            if message.is_text() || message.is_binary() {
                if socket.send(message).await.is_err() {
                    break;
                }
            } else if message.is_close() {
                break;
            }
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
