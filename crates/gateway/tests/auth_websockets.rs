//! WebSockets on a web app with sessions (GW-23): opened only with the session and the app's
//! origin, closed with 1008 when the session ends, and kept alive by traffic but not by
//! pings. The identity service is the test double of `support::auth_double`.

#![allow(clippy::unwrap_used)]

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use support::auth_double::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_ws(
    addr: SocketAddr,
    headers: &[(&'static str, String)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{LIVE}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap()
    .map(|(socket, _)| socket)
}

/// Sends `text` and waits for its echo.
async fn echo(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
    loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("an echo in time")
            .expect("the socket is open")
            .unwrap();
        if message.is_text() {
            assert_eq!(message.into_text().unwrap().as_str(), text);
            return;
        }
    }
}

#[tokio::test]
async fn a_websocket_closes_with_1008_when_its_session_ends() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let own = ("origin", format!("http://{LIVE}"));

    let refused = open_ws(gw.addr, &[("cookie", format!("SESSION={ANN}"))]).await;
    assert!(
        refused.is_err(),
        "a session's WebSocket needs the app's origin"
    );
    let refused = open_ws(
        gw.addr,
        &[
            ("cookie", format!("SESSION={ANN}")),
            ("origin", "http://evil.example".into()),
        ],
    )
    .await;
    assert!(refused.is_err());
    let refused = open_ws(gw.addr, std::slice::from_ref(&own)).await;
    assert!(refused.is_err(), "no session, no WebSocket");

    let mut socket = open_ws(gw.addr, &[("cookie", format!("SESSION={ANN}")), own])
        .await
        .unwrap();
    echo(&mut socket, "hello").await;
    double.end(ANN);
    let close = loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("a close in time");
        match message {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close code");
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(u16::from(frame.code), 1008);
}

#[tokio::test]
async fn traffic_on_a_websocket_keeps_its_session_alive_and_pings_do_not() {
    let double = Double::with_sessions();
    let touch = Duration::from_millis(100);
    let gw = gateway_tweaked(&double, |c| {
        c.session_touch_interval = touch;
        c.websocket_ping_interval = Some(Duration::from_millis(30));
    })
    .await;
    let mut socket = open_ws(
        gw.addr,
        &[
            ("cookie", format!("SESSION={ANN}")),
            ("origin", format!("http://{LIVE}")),
        ],
    )
    .await
    .unwrap();
    let at_open = double.lookups(ANN);
    assert!(at_open >= 1, "the handshake looked the session up");

    // Messages over several touch intervals touch the session.
    for i in 0..6 {
        echo(&mut socket, &format!("m{i}")).await;
        tokio::time::sleep(touch).await;
    }
    let after_traffic = double.lookups(ANN);
    assert!(
        after_traffic > at_open,
        "traffic touched the session: {at_open} -> {after_traffic}"
    );

    // Quiet but for the gateway's pings (answered by the client as it reads): the
    // session is left alone, at most one touch for the last messages.
    let quiet = async {
        while let Some(Ok(message)) = socket.next().await {
            assert!(message.is_ping(), "only pings arrive: {message:?}");
        }
    };
    let _ = tokio::time::timeout(touch * 8, quiet).await;
    let after_quiet = double.lookups(ANN);
    assert!(
        after_quiet <= after_traffic + 1,
        "pings do not keep the session alive: {after_traffic} -> {after_quiet}"
    );
}
