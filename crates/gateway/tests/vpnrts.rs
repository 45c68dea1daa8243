//! Routing on the Remote Services hosts (GW-6): the token endpoint and the well-known
//! documents on `connectivity`, the relay's WebSockets `/ccf/` and `/mts/` and its framed
//! lanes on `wss` (with their upgrade and the endpoint's bearer token passed to the
//! in-process `relay`), and a
//! clear refusal for everything else there.

#![allow(clippy::unwrap_used)]

mod support;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use portico_gateway::body::{full, Body};
use portico_gateway::{from_tower, Services};
use portico_store::Registry;
use std::convert::Infallible;
use std::time::Duration;
use support::{get, start_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WSS: &str = "wss.eu1.vpnrts.portico.localhost";
const CONNECTIVITY: &str = "connectivity.eu1.vpnrts.portico.localhost";

/// `identity` names the path it got; `relay` upgrades and echoes raw bytes, after
/// answering with the path and the Authorization header it saw.
fn services() -> Services {
    let mut services = Services::new();
    let identity = tower::service_fn(|request: Request<Body>| async move {
        let body = format!("identity {}", request.uri().path());
        Ok::<_, Infallible>(Response::new(full(body)))
    });
    services.insert("identity".into(), from_tower(identity));
    let relay = tower::service_fn(|mut request: Request<Body>| async move {
        let seen = format!(
            "relay {} auth={}",
            request.uri().path(),
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
        );
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = io.read(&mut buf).await {
                if io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut response = Response::new(full(String::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-seen", HeaderValue::from_str(&seen).unwrap());
        Ok::<_, Infallible>(response)
    });
    services.insert("relay".into(), from_tower(relay));
    services
}

const UPGRADE: [&str; 4] = [
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

#[tokio::test]
async fn connectivity_host_serves_the_token_endpoint_and_nothing_else() {
    let gw = start_with(&Registry::default(), services(), |_| {}).await;
    let r = get(gw.addr, CONNECTIVITY, "/uaa/oauth/token", &[]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "identity /uaa/oauth/token")
    );
    let r = get(gw.addr, CONNECTIVITY, "/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    for path in ["/login", "/oauth/authorize", "/ccf/", "/mts/", "/api/x"] {
        let r = get(gw.addr, CONNECTIVITY, path, &UPGRADE).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(r.body.contains("Nothing is served"), "{path}: {}", r.body);
    }
}

/// Sends an upgrade request and reads the response head; the connection stays open.
async fn upgrade(addr: std::net::SocketAddr, path: &str, extra: &[&str]) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {WSS}\r\n");
    for line in UPGRADE.iter().chain(extra) {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
        assert!(head.len() < 8192, "response head too long");
    }
    (String::from_utf8_lossy(&head).to_string(), stream)
}

#[tokio::test]
async fn wss_host_passes_socket_upgrades_to_the_relay() {
    let gw = start_with(&Registry::default(), services(), |_| {}).await;
    for path in ["/ccf/", "/mts/"] {
        let (head, _stream) = upgrade(gw.addr, path, &["Authorization: Bearer abc"]).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{path}: {head}");
        let seen = format!("x-seen: relay {path} auth=Bearer abc");
        assert!(
            head.to_ascii_lowercase()
                .contains(&seen.to_ascii_lowercase()),
            "{head}"
        );
    }
    // The upgraded connection carries bytes both ways.
    let (_, mut stream) = upgrade(gw.addr, "/mts/", &[]).await;
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
}

/// A framed lane's upgrade (`Upgrade: portico-lane`, no WebSocket headers) reaches the
/// relay too, and bytes the agent sends right behind the request head, before the `101`,
/// are the upgraded connection's first bytes: not read as another request.
#[tokio::test]
async fn wss_host_passes_framed_lane_upgrades_and_the_bytes_behind_them() {
    let gw = start_with(&Registry::default(), services(), |_| {}).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /mts/lane/open HTTP/1.1\r\nHost: {WSS}\r\nConnection: Upgrade\r\n\
         Upgrade: portico-lane\r\n\r\n\x02\0\0\0\x01 not a request head\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut piece = [0u8; 256];
    let expected = b"\x02\0\0\0\x01 not a request head\r\n\r\n";
    while !answer.ends_with(expected) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut piece))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&piece[..n]);
        assert!(answer.len() < 8192, "{}", String::from_utf8_lossy(&answer));
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(answer.contains("x-seen: relay /mts/lane/open"), "{answer}");
}

#[tokio::test]
async fn wss_host_refuses_plain_requests_and_other_paths() {
    let gw = start_with(&Registry::default(), services(), |_| {}).await;
    let r = get(gw.addr, WSS, "/mts/", &[]).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("WebSocket"), "{}", r.body);
    for path in [
        "/",
        "/uaa/oauth/token",
        "/api/remoteservices/v1/connections",
        "/ccfx",
    ] {
        let r = get(gw.addr, WSS, path, &UPGRADE).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    // Without the relay in this build the socket paths are not served either.
    let bare = start_with(&Registry::default(), Services::new(), |_| {}).await;
    let r = get(bare.addr, WSS, "/ccf/", &UPGRADE).await;
    assert_eq!(r.status, 404, "{r:?}");
}
