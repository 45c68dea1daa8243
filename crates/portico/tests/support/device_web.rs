//! A device's own web server, as a PLC or HMI has one: on a free loopback port (reached
//! only by the Device Endpoint's agent), plain HTTP or HTTPS with a self-signed
//! certificate. It serves a page with a stylesheet, an image and a script that opens a
//! WebSocket to `/ws` (an echo), and a few paths that show what the device was sent.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The device's page: its script echoes through `/ws` and records what happened.
pub const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Press 7 HMI</title>
<link rel="stylesheet" href="/style.css"></head>
<body><h1 id="title">Press 7</h1><img id="logo" src="/logo.png" alt="logo">
<p id="state">starting</p>
<script>
window.wsClosed = false;
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send("hello device");
ws.onmessage = (e) => { window.wsEcho = e.data; document.getElementById("state").textContent = "echo: " + e.data; };
ws.onclose = () => { window.wsClosed = true; };
</script></body></html>
"#;

/// The stylesheet: the page's heading turns this colour once it applied.
pub const STYLE: &str = "h1 { color: rgb(200, 10, 20); font-family: sans-serif; }\n\
                         body { background-color: rgb(240, 240, 230); }\n";
/// The heading's colour under [`STYLE`], as `getComputedStyle` reports it.
pub const STYLED_COLOUR: &str = "rgb(200, 10, 20)";

/// A 24 × 12 PNG, one colour.
pub const LOGO: [u8; 80] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 24, 0, 0, 0, 12, 8, 2,
    0, 0, 0, 247, 82, 234, 34, 0, 0, 0, 23, 73, 68, 65, 84, 120, 156, 99, 144, 171, 56, 65, 21,
    196, 48, 106, 208, 168, 65, 163, 6, 225, 67, 0, 26, 27, 137, 208, 245, 194, 244, 41, 0, 0, 0,
    0, 73, 69, 78, 68, 174, 66, 96, 130,
];

/// Starts the server in a thread of its own; its address. With `tls`, HTTPS with a
/// certificate signed by nobody.
pub fn start(tls: bool) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let acceptor = tls.then(self_signed_acceptor);
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream).await;
                            }
                        }
                        None => serve(stream).await,
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["hmi.local".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.key_pair.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) {
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        Ok::<_, Infallible>(answer(req))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

fn answer(mut req: Request<Incoming>) -> Response<Body> {
    let text = |body: String, content_type: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        response
    };
    match req.uri().path() {
        "/" => text(PAGE.to_string(), "text/html; charset=utf-8"),
        "/style.css" => text(STYLE.to_string(), "text/css"),
        "/logo.png" => {
            let mut response = Response::new(Full::new(Bytes::from_static(&LOGO)).boxed_unsync());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, "image/png".parse().unwrap());
            response
        }
        // What the device was sent: its Host, Origin, and whether Portico's cookies came along.
        "/seen" => {
            let get = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            let seen = serde_json::json!({
                "host": get("host"),
                "origin": get("origin"),
                "cookie": get("cookie"),
                "method": req.method().as_str(),
            });
            text(seen.to_string(), "application/json")
        }
        // Cookies, one of them for the whole region.
        "/cookies" => {
            let mut response = text("cookies\n".into(), "text/plain");
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, "plc=1; Path=/".parse().unwrap());
            headers.append(
                header::SET_COOKIE,
                "wide=1; Path=/; Domain=eu1.portico.localhost"
                    .parse()
                    .unwrap(),
            );
            response
        }
        "/ws" => {
            let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
                let mut response = text("a WebSocket only\n".into(), "text/plain");
                *response.status_mut() = StatusCode::BAD_REQUEST;
                return response;
            };
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else {
                    return;
                };
                let mut socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(_) | Message::Binary(_) = message {
                        if socket.send(message).await.is_err() {
                            return;
                        }
                    }
                }
            });
            let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, "upgrade".parse().unwrap());
            headers.insert(header::UPGRADE, "websocket".parse().unwrap());
            headers.insert(
                "sec-websocket-accept",
                derive_accept_key(key.as_bytes()).parse().unwrap(),
            );
            response
        }
        _ => {
            let mut response = text("not on this device\n".into(), "text/plain");
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}
