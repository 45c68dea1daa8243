//! WebSockets through `portico serve`: the demo app's echo, and a registered echo backend
//! that gets, like its client, a 1001 close when Portico is stopped with SIGTERM (GW-24).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_demo_echoes_websocket_messages_through_the_gateway() {
    let portico = tokio::task::spawn_blocking(Portico::start_with_defaults)
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", portico.plain))
        .await
        .unwrap();
    let mut request = format!("ws://demo-hello.eu1.portico.localhost:{}/ws", portico.plain)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert("x-test", "1".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the gateway"] {
        socket.send(Message::text(text)).await.unwrap();
        let echo = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text(text));
    }
    socket.close(None).await.unwrap();

    // Paths not registered for WebSockets refuse the upgrade.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", portico.plain))
        .await
        .unwrap();
    let request = format!(
        "ws://demo-hello.eu1.portico.localhost:{}/other",
        portico.plain
    )
    .into_client_request()
    .unwrap();
    let err = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    drop(portico);
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
data_dir = "./data"
registry = "./registry.toml"
"#;

/// `portico serve` with the web app `echo` of tenant `abc` (WebSockets on `/ws`) on an
/// echo backend, which reports the close codes it gets.
async fn start_with_echo_backend() -> (Portico, std::sync::mpsc::Receiver<Option<u16>>) {
    let (closes, backend_closes) = std::sync::mpsc::channel();
    let backend = websocket_echo_backend(closes);
    let registry = format!(
        r#"
[[tenants]]
name = "abc"

[[webapps]]
name = "echo"
backend = "http://{backend}"
tenants = ["abc"]
websockets = ["/ws"]
auth = "none"
"#
    );
    let portico = tokio::task::spawn_blocking(move || {
        Portico::start(CONFIG, &[("registry.toml", registry.as_str())])
    })
    .await
    .unwrap();
    (portico, backend_closes)
}

#[tokio::test]
async fn sigterm_closes_open_websockets_with_1001_and_portico_exits_0() {
    let (mut portico, backend_closes) = start_with_echo_backend().await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", portico.plain))
        .await
        .unwrap();
    let request = format!("ws://abc-echo.eu1.portico.localhost:{}/ws", portico.plain)
        .into_client_request()
        .unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    socket.send(Message::text("open")).await.unwrap();
    let step = Duration::from_secs(10);
    let echo = tokio::time::timeout(step, socket.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("open"));

    portico.terminate();
    let close = tokio::time::timeout(step, socket.next())
        .await
        .expect("a close frame in time")
        .unwrap()
        .unwrap();
    match close {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    // Tungstenite answers the close; then Portico drops the connection and exits.
    let end = tokio::time::timeout(step, socket.next()).await.unwrap();
    assert!(end.is_none() || end.unwrap().is_err());
    let status = tokio::task::spawn_blocking(move || {
        let status = portico.wait_exit(Duration::from_secs(20));
        (status, portico.stderr())
    })
    .await
    .unwrap();
    assert!(
        status.0.is_some_and(|s| s.success()),
        "exit {:?}: {}",
        status.0,
        status.1
    );
    assert_eq!(backend_closes.recv_timeout(step).unwrap(), Some(1001));
}

/// The relay reads and writes a WebSocket's connections itself only when it can take them
/// back out of the HTTP library's upgrade layers, which works for exactly the connection
/// types the listeners build. A layer added anywhere around a client connection would
/// silently put every relayed message through those layers again: the relays are counted
/// by path, and both of these must be `direct`.
#[tokio::test]
async fn websockets_over_plain_and_tls_connections_are_relayed_directly() {
    let (portico, _backend_closes) = start_with_echo_backend().await;
    let host = "abc-echo.eu1.portico.localhost";
    let step = Duration::from_secs(10);

    let plain = tokio::net::TcpStream::connect(("127.0.0.1", portico.plain))
        .await
        .unwrap();
    let request = format!("ws://{host}:{}/ws", portico.plain)
        .into_client_request()
        .unwrap();
    let (mut over_plain, _) = tokio_tungstenite::client_async(request, plain)
        .await
        .unwrap();

    let tls = tls_to(&portico, host).await;
    let request = format!("wss://{host}:{}/ws", portico.tls)
        .into_client_request()
        .unwrap();
    let (mut over_tls, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();

    over_plain.send(Message::text("plain")).await.unwrap();
    over_tls.send(Message::text("tls")).await.unwrap();
    let echo = tokio::time::timeout(step, over_plain.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("plain"));
    let echo = tokio::time::timeout(step, over_tls.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("tls"));
    let admin = portico.admin;
    let (status, metrics) =
        tokio::task::spawn_blocking(move || curl(&[&format!("http://127.0.0.1:{admin}/metrics")]))
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("portico_websocket_relays_total{path=\"direct\"} 2"),
        "{metrics}"
    );
    assert!(!metrics.contains("path=\"layered\""), "{metrics}");
    over_plain.close(None).await.unwrap();
    over_tls.close(None).await.unwrap();
}
