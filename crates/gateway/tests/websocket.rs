//! WebSockets through a real gateway on loopback (GW-21, GW-22, GW-24): the handshake
//! checks, subprotocol negotiation, an echo of many mixed messages, gateway pings, and the
//! 1001 close at shutdown.

#![allow(clippy::unwrap_used)]
// Tests fail loudly on purpose.
// Tungstenite's handshake callback has its refusal (a whole response) as the error type.
#![allow(clippy::result_large_err)]

mod support;

use futures_util::{SinkExt, StreamExt};
use portico_gateway::{Gateway, GatewayConfig, Services};
use portico_store::Registry;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

const HOST: &str = "abc-echo.eu1.portico.localhost";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Subprotocols the echo backend speaks, in its own order of preference.
const BACKEND_PROTOCOLS: [&str; 2] = ["ocpp1.6", "mqtt"];
/// Every step of a test waits at most this long.
const STEP: Duration = Duration::from_secs(10);

/// What the echo backend saw on its WebSockets.
#[derive(Debug)]
enum Seen {
    /// The `Sec-WebSocket-Protocol` offer of a handshake, as it arrived.
    Offer(Option<String>),
    /// A close frame's code.
    Close(Option<u16>),
    Pong,
}

/// A WebSocket echo backend (tokio-tungstenite) that picks the first offered subprotocol
/// it speaks, refuses `/forbidden` with 403, and reports what it saw.
async fn echo_backend() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream, seen.clone()));
        }
    });
    (addr, rx)
}

/// The same over TLS, with a certificate for `127.0.0.1` from a CA of its own, which
/// comes back with the address.
async fn tls_echo_backend() -> (SocketAddr, CertificateDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, _) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    echo(tls, seen).await;
                }
            });
        }
    });
    (addr, ca.der().clone())
}

/// Serves one echo backend connection.
async fn echo<S>(stream: S, seen: mpsc::UnboundedSender<Seen>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let offer_seen = seen.clone();
    let callback = move |request: &Request, mut response: Response| {
        if request.uri().path() == "/forbidden" {
            let mut refusal = ErrorResponse::new(Some("no".into()));
            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let offer = request
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string());
        let chosen = offer.as_deref().and_then(|offer| {
            offer
                .split(',')
                .map(str::trim)
                .find(|p| BACKEND_PROTOCOLS.contains(p))
        });
        if let Some(chosen) = chosen {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", chosen.parse().unwrap());
        }
        let _ = offer_seen.send(Seen::Offer(offer));
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        match message {
            data @ (Message::Text(_) | Message::Binary(_)) => {
                let echoed = socket.send(data).await;
                if echoed.is_err() {
                    return;
                }
            }
            Message::Pong(_) => {
                let _ = seen.send(Seen::Pong);
            }
            Message::Close(frame) => {
                let _ = seen.send(Seen::Close(frame.map(|f| u16::from(f.code))));
            }
            _ => {}
        }
    }
}

fn registry(backend: SocketAddr) -> Registry {
    let mut echo = webapp("echo", None, backend, &["abc"]);
    echo.websockets = vec!["/ws/**".into(), "/forbidden".into()];
    Registry {
        tenants: vec![tenant("abc")],
        webapps: vec![echo],
        apis: Vec::new(),
    }
}

/// A gateway serving `registry`, with the handle of its serve future.
struct Serving {
    addr: SocketAddr,
    gateway: Gateway,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<()>,
}

async fn serve(registry: &Registry, tweak: impl FnOnce(&mut GatewayConfig)) -> Serving {
    let mut config = GatewayConfig::new(vec!["portico.localhost".into()], vec!["eu1".into()]);
    tweak(&mut config);
    let gateway = Gateway::new(config, Services::new());
    assert!(gateway.install(registry).is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let served = {
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { gateway.serve(listener, None, shutdown).await })
    };
    Serving {
        addr,
        gateway,
        shutdown,
        served,
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket through the gateway at `addr` with the extra request headers given.
async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Socket, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{HOST}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async_with_config(
            request,
            MaybeTlsStream::Plain(stream),
            Some(config),
        ),
    )
    .await
    .unwrap()
}

/// Sends a handshake request with `extra` header lines and reads the one response.
async fn handshake(addr: SocketAddr, path: &str, extra: &[&str]) -> Raw {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let read_response = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(raw) = parse_responses(&bytes).into_iter().next() {
                let length: usize = raw
                    .header("content-length")
                    .map_or(0, |l| l.parse().unwrap());
                if raw.body.len() >= length {
                    return raw;
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response: {bytes:?}");
            bytes.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(STEP, read_response).await.unwrap()
}

/// The next message other than pings and pongs.
async fn next_data(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

/// The gateway's one WebSocket so far was relayed reading and writing both connections
/// itself, not through hyper's layers.
fn assert_relayed_directly(gw: &Serving) {
    let metrics = gw.gateway.metrics().encode();
    assert!(
        metrics.contains("portico_websocket_relays_total{path=\"direct\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("path=\"layered\""), "{metrics}");
}

#[tokio::test]
async fn a_browser_style_client_gets_the_backends_choice_of_subprotocol() {
    let (backend, mut seen) = echo_backend().await;
    let gw = serve(&registry(backend), |_| {}).await;
    let (mut socket, response) = connect(
        gw.addr,
        "/ws/ocpp",
        &[("sec-websocket-protocol", "ocpp2.0, ocpp1.6")],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "ocpp1.6");
    // The offer reached the backend as the client made it, in its order of preference.
    match seen.recv().await.unwrap() {
        Seen::Offer(offer) => assert_eq!(offer.as_deref(), Some("ocpp2.0, ocpp1.6")),
        other => panic!("{other:?}"),
    }
    socket
        .send(Message::text("[2,\"1\",\"Heartbeat\",{}]"))
        .await
        .unwrap();
    assert_eq!(
        next_data(&mut socket).await,
        Message::text("[2,\"1\",\"Heartbeat\",{}]")
    );
    // Counted by the relay's task, which has run once a message came back through it (the
    // 101 alone may reach the client first: the relay runs on a core's thread).
    assert!(gw
        .gateway
        .metrics()
        .encode()
        .contains("portico_open_websockets 1"));
    assert_relayed_directly(&gw);
    socket.close(None).await.unwrap();
}

/// A backend over HTTPS, trusted through `backend_roots` (a service network's own CA):
/// the handshake and the messages go through, and the relay reads and writes the
/// backend's TLS connection itself. Without the CA, the handshake is refused and says why.
#[tokio::test]
async fn a_websocket_to_an_https_backend_is_relayed_directly_once_its_ca_is_trusted() {
    let (backend, ca) = tls_echo_backend().await;
    let mut registry = registry(backend);
    registry.webapps[0].backend = format!("https://{backend}");

    let untrusting = serve(&registry, |_| {}).await;
    let refused = handshake(
        untrusting.addr,
        "/ws/x",
        &[
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {KEY}"),
        ],
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("TLS certificate is not trusted"),
        "{}",
        refused.body
    );
    let plain = get(untrusting.addr, HOST, "/page", &[]).await;
    assert_eq!(plain.status, 502);
    assert!(
        plain
            .body
            .contains("The backend's TLS certificate is not trusted"),
        "{}",
        plain.body
    );

    let gw = serve(&registry, |config| config.backend_roots = vec![ca]).await;
    let (mut socket, response) = connect(gw.addr, "/ws/x", &[]).await.unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..100 {
        let (bytes, text) = nth_message(i);
        let message = if text {
            Message::text(String::from_utf8(bytes).unwrap())
        } else {
            Message::binary(bytes)
        };
        socket.send(message.clone()).await.unwrap();
        assert_eq!(next_data(&mut socket).await, message, "message {i}");
    }
    assert_relayed_directly(&gw);
    socket.close(None).await.unwrap();
}

/// The `i`-th message of the echo test: text, binary, or a message sent in three
/// fragments; mostly small, every 250th over 64 KiB. Generated again to check the echo.
fn nth_message(i: usize) -> (Vec<u8>, bool) {
    let size = match i % 250 {
        0 => 65_536 + 1 + (i % 7) * 10_000,
        1 => 126 + i % 3,
        _ => (i * 37) % 1_500,
    };
    let text = i % 2 == 0;
    let mut state = i as u32 ^ 0x9E37_79B9;
    let bytes = (0..size)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let b = (state >> 24) as u8;
            if text {
                b'a' + b % 26
            } else {
                b
            }
        })
        .collect();
    (bytes, text)
}

#[tokio::test]
async fn ten_thousand_mixed_messages_come_back_intact() {
    const MESSAGES: usize = 10_000;
    let (backend, _seen) = echo_backend().await;
    let gw = serve(&registry(backend), |_| {}).await;
    let (socket, _) = connect(gw.addr, "/ws/echo", &[]).await.unwrap();
    let (mut sink, mut stream) = socket.split();

    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            let (bytes, text) = nth_message(i);
            if i % 3 == 2 && bytes.len() >= 3 {
                // Fragmented: a first frame and two continuations.
                let third = bytes.len() / 3;
                let first = if text { Data::Text } else { Data::Binary };
                let parts = [
                    (OpCode::Data(first), &bytes[..third], false),
                    (
                        OpCode::Data(Data::Continue),
                        &bytes[third..2 * third],
                        false,
                    ),
                    (OpCode::Data(Data::Continue), &bytes[2 * third..], true),
                ];
                for (opcode, part, fin) in parts {
                    let frame = Frame::message(part.to_vec(), opcode, fin);
                    sink.feed(Message::Frame(frame)).await.unwrap();
                }
            } else if text {
                sink.feed(Message::text(String::from_utf8(bytes).unwrap()))
                    .await
                    .unwrap();
            } else {
                sink.feed(Message::binary(bytes)).await.unwrap();
            }
            if i % 100 == 99 {
                sink.flush().await.unwrap();
            }
        }
        sink.flush().await.unwrap();
        sink
    });

    let receive = async {
        for i in 0..MESSAGES {
            let message = tokio::time::timeout(STEP, stream.next())
                .await
                .unwrap_or_else(|_| panic!("echo {i} in time"))
                .unwrap()
                .unwrap();
            let (bytes, text) = nth_message(i);
            match message {
                Message::Text(t) if text => assert!(t.as_bytes() == bytes, "message {i}"),
                Message::Binary(b) if !text => assert!(b[..] == bytes[..], "message {i}"),
                other => panic!("message {i}: unexpected {:?}", other.len()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), receive)
        .await
        .expect("all echoes within 120 s");
    let mut sink = sender.await.unwrap();
    sink.send(Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn an_empty_subprotocol_header_is_refused_with_400() {
    let (backend, _seen) = echo_backend().await;
    let gw = serve(&registry(backend), |_| {}).await;
    let base = [
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let r = handshake(
        gw.addr,
        "/ws/x",
        &[base[0], base[1], "Sec-WebSocket-Protocol: "],
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Sec-WebSocket-Protocol"));
    // Tungstenite as a client is refused the same way.
    let err = connect(gw.addr, "/ws/x", &[("sec-websocket-protocol", "")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn a_wrong_version_is_refused_naming_version_13() {
    let (backend, _seen) = echo_backend().await;
    let gw = serve(&registry(backend), |_| {}).await;
    for version in ["Sec-WebSocket-Version: 8", "X-No-Version: 1"] {
        let r = handshake(
            gw.addr,
            "/ws/x",
            &[version, &format!("Sec-WebSocket-Key: {KEY}")],
        )
        .await;
        assert_eq!(r.status, 426, "{r:?}");
        assert_eq!(r.header("sec-websocket-version"), Some("13"));
        assert_eq!(r.header("upgrade"), Some("websocket"));
    }
}

#[tokio::test]
async fn a_bad_key_is_refused_with_400() {
    let (backend, _seen) = echo_backend().await;
    let gw = serve(&registry(backend), |_| {}).await;
    for key in [
        None,
        Some("not base64 at all!!!!!!!"),
        Some("AAAAAAAAAAAAAAAAAAAAAAAA"),
        Some("AAAA"),
    ] {
        let mut lines = vec!["Sec-WebSocket-Version: 13".to_string()];
        if let Some(key) = key {
            lines.push(format!("Sec-WebSocket-Key: {key}"));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = handshake(gw.addr, "/ws/x", &lines).await;
        assert_eq!(r.status, 400, "{key:?}: {r:?}");
        assert!(r.json()["message"]
            .as_str()
            .unwrap()
            .contains("Sec-WebSocket-Key"));
    }
}

#[tokio::test]
async fn a_stopped_backend_gets_400() {
    let stopped = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let gw = serve(&registry(stopped), |_| {}).await;
    let err = connect(gw.addr, "/ws/x", &[]).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn a_backends_refusal_passes_on() {
    let (backend, _seen) = echo_backend().await;
    let gw = serve(&registry(backend), |_| {}).await;
    let r = handshake(
        gw.addr,
        "/forbidden",
        &[
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {KEY}"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.header("x-request-id").is_some());
}

/// A backend that answers every request with a 101 whose accept value is wrong.
async fn lying_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = 0;
                while !buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                          Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
                    )
                    .await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_101_with_a_wrong_accept_is_a_bad_gateway() {
    let gw = serve(&registry(lying_backend().await), |_| {}).await;
    let r = handshake(
        gw.addr,
        "/ws/x",
        &[
            "Sec-WebSocket-Version: 13",
            &format!("Sec-WebSocket-Key: {KEY}"),
        ],
    )
    .await;
    assert_eq!(r.status, 502, "{r:?}");
}

#[tokio::test]
async fn gateway_pings_reach_the_client_and_their_pongs_stop_at_the_gateway() {
    let (backend, mut seen) = echo_backend().await;
    let gw = serve(&registry(backend), |c| {
        c.websocket_ping_interval = Some(Duration::from_millis(100));
    })
    .await;
    let (mut socket, _) = connect(gw.addr, "/ws/ping", &[]).await.unwrap();
    let mut pings = 0;
    while pings < 3 {
        match tokio::time::timeout(STEP, socket.next())
            .await
            .expect("a ping in time")
            .unwrap()
            .unwrap()
        {
            Message::Ping(payload) => {
                assert!(payload.starts_with(b"portico-ping-"), "{payload:?}");
                pings += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Tungstenite answered each ping with a pong; messages still echo, and the backend
    // saw no pong.
    socket.send(Message::text("after pings")).await.unwrap();
    assert_eq!(next_data(&mut socket).await, Message::text("after pings"));
    socket
        .send(Message::Pong(b"unsolicited".to_vec().into()))
        .await
        .unwrap();
    socket.send(Message::text("again")).await.unwrap();
    assert_eq!(next_data(&mut socket).await, Message::text("again"));
    assert!(matches!(seen.recv().await, Some(Seen::Offer(None))));
    // The only pong the backend saw is the client's own.
    let pong = tokio::time::timeout(STEP, seen.recv()).await.unwrap();
    assert!(matches!(pong, Some(Seen::Pong)), "{pong:?}");
    assert!(seen.try_recv().is_err());
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn shutdown_sends_open_websockets_a_1001_close_and_the_drain_finishes() {
    let (backend, mut seen) = echo_backend().await;
    let gw = serve(&registry(backend), |c| {
        c.drain_timeout = Duration::from_secs(20);
    })
    .await;
    let (mut socket, _) = connect(gw.addr, "/ws/open", &[]).await.unwrap();
    socket.send(Message::text("before")).await.unwrap();
    assert_eq!(next_data(&mut socket).await, Message::text("before"));

    gw.shutdown.cancel();
    match next_data(&mut socket).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    // Tungstenite answered the close; the socket ends and the serve future finishes.
    let end = tokio::time::timeout(STEP, socket.next()).await.unwrap();
    assert!(end.is_none() || end.unwrap().is_err());
    tokio::time::timeout(STEP, gw.served)
        .await
        .expect("serve finished in time")
        .unwrap();
    // The backend was told the same, as a client tells a server.
    assert!(matches!(seen.recv().await, Some(Seen::Offer(None))));
    let close = tokio::time::timeout(STEP, seen.recv()).await.unwrap();
    assert!(matches!(close, Some(Seen::Close(Some(1001)))), "{close:?}");
    assert!(gw.gateway.websockets().is_empty());
    assert!(gw
        .gateway
        .metrics()
        .encode()
        .contains("portico_open_websockets 0"));
}

#[tokio::test]
async fn open_websockets_hold_their_connection_permits() {
    let (backend, _seen) = echo_backend().await;
    let serving = serve(&registry(backend), |c| c.max_connections = 2).await;
    let (mut first, _) = connect(serving.addr, "/ws/permits", &[]).await.unwrap();
    let (mut second, _) = connect(serving.addr, "/ws/permits", &[]).await.unwrap();
    // Both upgraded connections still count: a third client is over the limit.
    let refused = get(serving.addr, HOST, "/", &[]).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.header("retry-after").is_some());
    // The WebSockets themselves go on working.
    first.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_data(&mut first).await, Message::text("still here"));
    // A closed WebSocket gives its permit back.
    second.close(None).await.unwrap();
    while tokio::time::timeout(STEP, second.next())
        .await
        .unwrap()
        .is_some_and(|m| m.is_ok())
    {}
    drop(second);
    let mut served = None;
    for _ in 0..50 {
        let r = get(serving.addr, HOST, "/", &[]).await;
        if r.status != 503 {
            served = Some(r.status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.is_some(),
        "the closed WebSocket's permit never came back"
    );
}
