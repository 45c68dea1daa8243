//! The WebSocket transport: text frames in and out, many frames in flight, server pings,
//! and the close codes for frames that are not Bayeux.
#![allow(clippy::unwrap_used)]

mod transport_support;

use futures_util::{SinkExt, StreamExt};
use portico_realtime::transport::TransportOptions;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use transport_support::{channels, messages, Server, BASE};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const DEADLINE: Duration = Duration::from_secs(10);

async fn open(server: &Server) -> Socket {
    let (socket, response) = connect_async(server.ws_url()).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// The next message that is not a ping or pong.
async fn next_reply(socket: &mut Socket) -> Message {
    tokio::time::timeout(DEADLINE, async {
        for _ in 0..1000 {
            match socket.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return message,
                other => panic!("the socket ended: {other:?}"),
            }
        }
        panic!("only pings for 1000 messages")
    })
    .await
    .expect("a reply within the deadline")
}

async fn next_text(socket: &mut Socket) -> serde_json::Value {
    match next_reply(socket).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn close_frame(socket: &mut Socket) -> CloseFrame {
    match next_reply(socket).await {
        Message::Close(Some(frame)) => frame,
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn each_text_frame_is_a_request_answered_by_a_text_frame() {
    let server = Server::default().await;
    let mut socket = open(&server).await;
    socket
        .send(Message::text(messages(&[
            "/meta/handshake",
            "/meta/connect",
        ])))
        .await
        .unwrap();
    assert_eq!(
        channels(&next_text(&mut socket).await),
        ["/meta/handshake", "/meta/connect"]
    );
    socket
        .send(Message::text(r#"{"channel":"/meta/subscribe"}"#))
        .await
        .unwrap();
    assert_eq!(channels(&next_text(&mut socket).await), ["/meta/subscribe"]);
}

#[tokio::test]
async fn many_frames_sent_at_once_are_all_answered() {
    let server = Server::default().await;
    let mut socket = open(&server).await;
    let sent: BTreeSet<String> = (0..40).map(|i| format!("/test/{i}")).collect();
    for channel in &sent {
        socket
            .feed(Message::text(messages(&[channel])))
            .await
            .unwrap();
    }
    socket.flush().await.unwrap();
    let mut received = BTreeSet::new();
    for _ in 0..sent.len() {
        let replies = channels(&next_text(&mut socket).await);
        assert_eq!(replies.len(), 1);
        received.insert(replies[0].clone());
    }
    assert_eq!(received, sent);
}

#[tokio::test]
async fn the_server_pings_and_a_client_that_answers_stays_connected() {
    let server = Server::start(TransportOptions {
        ws_ping_interval: Duration::from_millis(250),
        ..TransportOptions::default()
    })
    .await;
    let mut socket = open(&server).await;
    let mut pings = 0;
    tokio::time::timeout(DEADLINE, async {
        // The client answers each ping with a pong when it next reads.
        while pings < 5 {
            match socket.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("expected pings only, got {other:?}"),
            }
        }
    })
    .await
    .expect("five pings within the deadline");
    // Five intervals on, well beyond two, the socket still serves.
    socket
        .send(Message::text(messages(&["/meta/connect"])))
        .await
        .unwrap();
    assert_eq!(channels(&next_text(&mut socket).await), ["/meta/connect"]);
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_two_ping_intervals() {
    let server = Server::start(TransportOptions {
        ws_ping_interval: Duration::from_millis(100),
        ..TransportOptions::default()
    })
    .await;
    // A raw client that never answers (nor reads until the end).
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let handshake = format!(
        "GET {BASE} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut received))
        .await
        .expect("the server closes the silent socket within the deadline")
        .unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let header_end = text.find("\r\n\r\n").unwrap() + 4;
    let frames = parse_server_frames(&received[header_end..]);
    let (last, before) = frames.split_last().expect("frames after the handshake");
    assert!(
        !before.is_empty() && before.iter().all(|(opcode, _)| *opcode == 0x9),
        "pings before the close: {frames:?}"
    );
    assert_eq!(last.0, 0x8, "a close frame last: {frames:?}");
    assert_eq!(u16::from_be_bytes([last.1[0], last.1[1]]), 1001);
}

/// (opcode, payload) of each unmasked, short frame a server sends.
fn parse_server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 && frames.len() < 100 {
        let opcode = bytes[0] & 0x0f;
        let length = usize::from(bytes[1] & 0x7f);
        assert!(
            length < 126 && bytes[1] & 0x80 == 0,
            "a short unmasked frame"
        );
        frames.push((opcode, bytes[2..2 + length].to_vec()));
        bytes = &bytes[2 + length..];
    }
    frames
}

#[tokio::test]
async fn a_binary_frame_closes_the_socket() {
    let server = Server::default().await;
    let mut socket = open(&server).await;
    socket
        .send(Message::binary(messages(&["/meta/connect"]).into_bytes()))
        .await
        .unwrap();
    let frame = close_frame(&mut socket).await;
    assert_eq!(frame.code, CloseCode::Unsupported);
    assert!(frame.reason.as_str().contains("text"), "{}", frame.reason);
}

#[tokio::test]
async fn a_frame_that_is_not_bayeux_closes_the_socket() {
    let server = Server::default().await;
    for frame in ["{not json", "[1]"] {
        let mut socket = open(&server).await;
        socket.send(Message::text(frame)).await.unwrap();
        let close = close_frame(&mut socket).await;
        assert_eq!(close.code, CloseCode::Invalid, "{frame}");
        assert!(!close.reason.is_empty());
    }
}

#[tokio::test]
async fn a_message_over_the_limit_closes_the_socket() {
    let server = Server::start(TransportOptions {
        max_body: 1024,
        ..TransportOptions::default()
    })
    .await;
    let mut socket = open(&server).await;
    let large = format!(
        r#"[{{"channel":"/meta/connect","pad":"{}"}}]"#,
        "x".repeat(2000)
    );
    socket.send(Message::text(large)).await.unwrap();
    let close = close_frame(&mut socket).await;
    assert_eq!(close.code, CloseCode::Size);
    assert!(close.reason.as_str().contains("1024"), "{}", close.reason);
}

#[tokio::test]
async fn a_socket_and_polls_serve_side_by_side() {
    let server = Server::default().await;
    let mut socket = open(&server).await;
    let poll = server
        .post_json(BASE, &messages(&["/meta/handshake"]))
        .await;
    assert_eq!(poll.channels(), ["/meta/handshake"]);
    socket
        .send(Message::text(messages(&["/meta/connect"])))
        .await
        .unwrap();
    assert_eq!(channels(&next_text(&mut socket).await), ["/meta/connect"]);
    socket.close(None).await.unwrap();
    // A closed socket leaves the endpoint serving.
    let mut again = open(&server).await;
    again
        .send(Message::text(messages(&["/meta/disconnect"])))
        .await
        .unwrap();
    assert_eq!(channels(&next_text(&mut again).await), ["/meta/disconnect"]);
}
