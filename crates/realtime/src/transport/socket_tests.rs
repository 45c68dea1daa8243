//! The socket's concurrency, with a scripted answerer standing in for the engine: frames
//! are processed in order, held connects do not block later frames, at most `FRAMES_IN_FLIGHT` are processed at once, and
//! a socket's end ends its held connects (only those).

use super::*;
use crate::bayeux::ConnectionType;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::Role;

const DEADLINE: Duration = Duration::from_secs(10);

/// Answers each message with its channel; holds `/meta/connect` and `/hold/**` frames
/// until released.
#[derive(Clone)]
struct Scripted {
    started: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
    released: watch::Receiver<bool>,
}

/// Counts an answer dropped before it finished.
struct Abandoned {
    count: Arc<AtomicUsize>,
    finished: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.finished {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Answerer for Scripted {
    fn answer(
        &self,
        messages: Vec<BayeuxMessage>,
        _incoming: Arc<Incoming>,
    ) -> impl Future<Output = Vec<Value>> + Send + 'static {
        let this = self.clone();
        async move {
            this.started.fetch_add(1, Ordering::SeqCst);
            let mut guard = Abandoned {
                count: Arc::clone(&this.abandoned),
                finished: false,
            };
            let channels: Vec<String> = messages
                .iter()
                .map(|m| m.0["channel"].as_str().unwrap().to_owned())
                .collect();
            if channels
                .iter()
                .any(|c| c == "/meta/connect" || c.starts_with("/hold/"))
            {
                let mut released = this.released.clone();
                let _ = released.wait_for(|r| *r).await;
            }
            guard.finished = true;
            channels
                .into_iter()
                .map(|c| serde_json::json!({ "channel": c }))
                .collect()
        }
    }
}

struct Harness {
    client: WebSocketStream<tokio::io::DuplexStream>,
    started: Arc<AtomicUsize>,
    abandoned: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

async fn harness(deadline: Duration) -> Harness {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
    let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let (release, released) = watch::channel(false);
    let scripted = Scripted {
        started: Arc::default(),
        abandoned: Arc::default(),
        released,
    };
    let harness = Harness {
        client,
        started: Arc::clone(&scripted.started),
        abandoned: Arc::clone(&scripted.abandoned),
        release,
    };
    let incoming = Incoming {
        authorization: None,
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        connection_type: ConnectionType::WebSocket,
    };
    let limits = Limits {
        ping_interval: Duration::from_secs(60),
        deadline,
        max_message: 64 * 1024,
    };
    tokio::spawn(serve(server, scripted, incoming, limits));
    harness
}

impl Harness {
    async fn send(&mut self, channel: &str) {
        let frame = serde_json::json!([{ "channel": channel }]).to_string();
        self.client.send(Message::text(frame)).await.unwrap();
    }

    async fn next(&mut self) -> Message {
        tokio::time::timeout(DEADLINE, self.client.next())
            .await
            .expect("a frame within the deadline")
            .expect("the socket is open")
            .unwrap()
    }

    /// The channel of the next reply frame (of one message).
    async fn next_channel(&mut self) -> String {
        match self.next().await {
            Message::Text(text) => {
                let replies: Value = serde_json::from_str(text.as_str()).unwrap();
                replies[0]["channel"].as_str().unwrap().to_owned()
            }
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not within 10 s: {what}");
    }
}

#[tokio::test]
async fn a_held_connect_does_not_block_later_frames() {
    let mut h = harness(DEADLINE).await;
    h.send("/meta/connect").await;
    h.send("/meta/subscribe").await;
    assert_eq!(h.next_channel().await, "/meta/subscribe");
    h.release.send(true).unwrap();
    assert_eq!(h.next_channel().await, "/meta/connect");
}

#[tokio::test]
async fn frames_are_processed_in_order_connects_included() {
    let mut h = harness(DEADLINE).await;
    h.send("/hold/first").await;
    h.send("/meta/subscribe").await;
    h.send("/meta/connect").await;
    let started = Arc::clone(&h.started);
    h.until("the first frame is processed", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.started.load(Ordering::SeqCst),
        1,
        "later frames wait for the first"
    );
    h.release.send(true).unwrap();
    assert_eq!(h.next_channel().await, "/hold/first");
    let rest = [h.next_channel().await, h.next_channel().await];
    assert!(rest.contains(&"/meta/subscribe".to_owned()), "{rest:?}");
    assert!(rest.contains(&"/meta/connect".to_owned()), "{rest:?}");
}

#[tokio::test]
async fn a_busy_socket_is_not_read_beyond_the_frames_in_flight() {
    let mut h = harness(DEADLINE).await;
    // Connects, which do not wait for each other.
    let sent = FRAMES_IN_FLIGHT + 10;
    for _ in 0..sent {
        h.send("/meta/connect").await;
    }
    let started = Arc::clone(&h.started);
    h.until("the first frames are processed", || {
        started.load(Ordering::SeqCst) == FRAMES_IN_FLIGHT
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.started.load(Ordering::SeqCst), FRAMES_IN_FLIGHT);
    h.release.send(true).unwrap();
    let mut replies = 0;
    while replies < sent {
        assert_eq!(h.next_channel().await, "/meta/connect");
        replies += 1;
    }
    assert_eq!(h.started.load(Ordering::SeqCst), sent);
}

#[tokio::test]
async fn the_end_of_a_socket_ends_its_held_connects_only() {
    let mut h = harness(DEADLINE).await;
    h.send("/meta/connect").await;
    h.send("/hold/publish").await;
    let started = Arc::clone(&h.started);
    h.until("both frames are processed", || {
        started.load(Ordering::SeqCst) == 2
    })
    .await;
    h.client.close(None).await.unwrap();
    let abandoned = Arc::clone(&h.abandoned);
    h.until("the held connect is ended", || {
        abandoned.load(Ordering::SeqCst) == 1
    })
    .await;
    // The other frame runs to its end.
    h.release.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.abandoned.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_engine_that_does_not_answer_in_time_closes_the_socket() {
    let mut h = harness(Duration::from_millis(100)).await;
    h.send("/meta/connect").await;
    match h.next().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Error),
        other => panic!("expected a close frame, got {other:?}"),
    }
}
