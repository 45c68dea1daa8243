//! WebSockets through the gateway: the demo app's echo, reached through `portico serve`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
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
