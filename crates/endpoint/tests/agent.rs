//! The running agent against a fake relay in the test (loopback only): a TLS server with
//! `/mts/` (a `portico_tunnel` relay) and `/ccf/` (control messages), and a token endpoint,
//! all trusting one test CA.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_endpoint::{Agent, Backoff, WebSocketTransport};
use portico_tunnel::control::{ControlMessage, DisconnectReason, Listener, RefusalReason};
use portico_tunnel::tunnel::{Incoming, TunnelHandle};
use portico_tunnel::{GoAwayReason, Role, TunnelConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{http, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

mod support;

use support::{agent_config, pki, spawn_token_endpoint, tls_acceptor, TestPki, TOKEN};

const LIMIT: Duration = Duration::from_secs(30);

type ServerSocket = WebSocketStream<Replayed>;

/// The fake relay's two sockets as the agent opens them.
struct FakeRelay {
    port: u16,
    tunnels: mpsc::UnboundedReceiver<(TunnelHandle, Incoming)>,
    controls: mpsc::UnboundedReceiver<ServerSocket>,
    /// Requests for anything but `/mts/` and `/ccf/` (lanes, which it does not offer).
    others: Arc<std::sync::atomic::AtomicUsize>,
}

/// Accepts up to 16 WebSockets that carry `Bearer TOKEN`: `/mts/` becomes a relay-role
/// tunnel, `/ccf/` is handed over as it is; any other path (a lane) is counted and refused
/// with 404. Like a relay from before lanes, it does not offer them (`portico-lanes`).
async fn spawn_relay(pki: &TestPki) -> FakeRelay {
    spawn_relay_with(pki, None).await
}

/// A relay that offers lanes of both kinds, and WebSocket lanes reach it, which it keeps
/// open. Framed lanes either meet a front that passes WebSocket upgrades only and answers
/// them with 400 (`refuse_framed`), or reach the relay, which reports the first frames of
/// each framed lane's stream: the `Open`'s target and the first `Data`.
#[derive(Clone)]
struct FrontedLanes {
    refuse_framed: bool,
    framed_refused: Arc<AtomicUsize>,
    websocket_lanes: Arc<AtomicUsize>,
    framed_streams: mpsc::UnboundedSender<(String, bytes::Bytes)>,
}

impl FrontedLanes {
    fn new(
        refuse_framed: bool,
    ) -> (
        FrontedLanes,
        mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
    ) {
        let (framed_streams, streams) = mpsc::unbounded_channel();
        let fronted = FrontedLanes {
            refuse_framed,
            framed_refused: Arc::new(AtomicUsize::new(0)),
            websocket_lanes: Arc::new(AtomicUsize::new(0)),
            framed_streams,
        };
        (fronted, streams)
    }
}

/// A framed lane the fake relay accepted: reports its stream's `Open` and first `Data`.
async fn report_framed_stream(
    tls: TlsStream<TcpStream>,
    streams: mpsc::UnboundedSender<(String, bytes::Bytes)>,
) {
    use portico_tunnel::lane::{self, framed::FramedLane};
    use portico_tunnel::Frame;
    let mut lane = FramedLane::new(tls, bytes::Bytes::new());
    let mut target = None;
    while let Some(Ok(message)) = lane.next().await {
        match (lane::decode(message), target.take()) {
            (Ok(Frame::Open { target: t, .. }), None) => target = Some(t),
            (Ok(Frame::Data { payload, .. }), Some(t)) => {
                let _ = streams.send((t, payload));
                return;
            }
            (Ok(Frame::Ping { .. }), t) => target = t,
            _ => return,
        }
    }
}

/// Reads one request head (at most 16 KiB) from `tls`.
async fn read_head(tls: &mut TlsStream<TcpStream>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return None;
        }
        let mut byte = [0u8; 1];
        if tls.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// A connection whose first bytes were already read: they are read again first.
struct Replayed {
    head: std::io::Cursor<Vec<u8>>,
    tls: TlsStream<TcpStream>,
}

impl tokio::io::AsyncRead for Replayed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if (self.head.position() as usize) < self.head.get_ref().len() {
            return std::pin::Pin::new(&mut self.head).poll_read(cx, buf);
        }
        std::pin::Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Replayed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tls).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tls).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

async fn spawn_relay_with(pki: &TestPki, fronted: Option<&FrontedLanes>) -> FakeRelay {
    let fronted = fronted.cloned();
    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tunnel_tx, tunnels) = mpsc::unbounded_channel();
    let (control_tx, controls) = mpsc::unbounded_channel();
    let others = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = others.clone();
    tokio::spawn(async move {
        let mut lanes = Vec::new();
        for _ in 0..64 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let Some(head) = read_head(&mut tls).await else {
                continue;
            };
            if let Some(fronted) = &fronted {
                let asked = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if asked.contains("\r\nupgrade: portico-lane\r\n") {
                    if fronted.refuse_framed {
                        fronted.framed_refused.fetch_add(1, Ordering::SeqCst);
                        let refusal = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
                        let _ = tls.write_all(refusal).await;
                        continue;
                    }
                    let switched = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                                     Upgrade: portico-lane\r\n\r\n";
                    if tls.write_all(switched).await.is_ok() {
                        tokio::spawn(report_framed_stream(tls, fronted.framed_streams.clone()));
                    }
                    continue;
                }
            }
            let tls = Replayed {
                head: std::io::Cursor::new(head),
                tls,
            };
            let path = Arc::new(std::sync::Mutex::new(String::new()));
            let seen = path.clone();
            let counted = counted.clone();
            let offers_lanes = fronted.is_some();
            #[allow(clippy::result_large_err)]
            let check =
                move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
                    *seen.lock().unwrap() = req.uri().path().to_string();
                    let lane = req.uri().path().starts_with("/mts/lane/");
                    // A relay without lanes: the agent's streams use the tunnel.
                    let served =
                        ["/mts/", "/ccf/"].contains(&req.uri().path()) || (offers_lanes && lane);
                    if !served {
                        counted.fetch_add(1, Ordering::SeqCst);
                        return Err(http::Response::builder().status(404).body(None).unwrap());
                    }
                    if offers_lanes && req.uri().path() == "/mts/" {
                        for offer in ["portico-lanes", "portico-framed-lanes"] {
                            resp.headers_mut()
                                .insert(offer, http::HeaderValue::from_static("1"));
                        }
                    }
                    let auth = req.headers().get(http::header::AUTHORIZATION);
                    if auth.and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}")) {
                        Ok(resp)
                    } else {
                        Err(http::Response::builder().status(401).body(None).unwrap())
                    }
                };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tls, check).await else {
                continue;
            };
            let path = path.lock().unwrap().clone();
            if let (Some(fronted), true) = (&fronted, path.starts_with("/mts/lane/")) {
                fronted.websocket_lanes.fetch_add(1, Ordering::SeqCst);
                lanes.push(ws);
                continue;
            }
            match path.as_str() {
                "/mts/" => {
                    let tunnel = portico_tunnel::Tunnel::new(
                        WebSocketTransport::new(ws),
                        Role::Relay,
                        TunnelConfig::default(),
                    );
                    let _ = tunnel_tx.send(tunnel);
                }
                "/ccf/" => {
                    let _ = control_tx.send(ws);
                }
                _ => {}
            }
        }
    });
    FakeRelay {
        port,
        tunnels,
        controls,
        others,
    }
}

/// One connection of the agent, as the relay sees it after the hello.
struct Session {
    tunnel: TunnelHandle,
    incoming: Incoming,
    control: ServerSocket,
}

impl FakeRelay {
    /// Waits for the agent's tunnel and control channel, checks the hello, and welcomes it.
    async fn accept(&mut self, endpoint: &str, role: Role) -> Session {
        let (tunnel, incoming) = self.tunnels.recv().await.unwrap();
        let mut control = self.controls.recv().await.unwrap();
        match recv(&mut control).await {
            ControlMessage::Hello {
                version,
                role: said,
                endpoint: name,
                agent,
            } => {
                assert_eq!((version, said, name.as_str()), (1, role, endpoint));
                assert!(agent.starts_with("portico "), "{agent}");
            }
            other => panic!("expected a hello, got {other:?}"),
        }
        send(
            &mut control,
            ControlMessage::Welcome {
                version: 1,
                keep_alive_secs: 20,
            },
        )
        .await;
        Session {
            tunnel,
            incoming,
            control,
        }
    }
}

async fn send(control: &mut ServerSocket, message: ControlMessage) {
    control.send(Message::text(message.encode())).await.unwrap();
}

/// The next control message other than a keep-alive.
async fn recv(control: &mut ServerSocket) -> ControlMessage {
    for _ in 0..32 {
        match control.next().await.unwrap().unwrap() {
            Message::Text(text) => match ControlMessage::decode(text.as_bytes()).unwrap() {
                ControlMessage::KeepAlive { .. } => continue,
                message => return message,
            },
            _ => continue,
        }
    }
    panic!("only keep-alives on the control channel");
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        cap: Duration::from_millis(200),
        healthy_after: Duration::from_secs(60),
    }
}

fn start(agent: Agent) -> CancellationToken {
    let shutdown = CancellationToken::new();
    tokio::spawn(agent.with_backoff(fast_backoff()).run(shutdown.clone()));
    shutdown
}

/// A port for a listener the agent opens later, free when it is handed out. It comes from
/// below the kernel's range for automatic ports (32768 and up on Linux), so that neither a
/// `bind` to port 0 nor an outgoing connection's local port takes it in the meantime; each
/// port is handed out once, and each test process starts at its own place in the range.
async fn free_port() -> u16 {
    use std::sync::atomic::AtomicU32;
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 32_768 - FIRST;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (start + offset) % COUNT).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
            return port;
        }
    }
    panic!("no free port below 32768");
}

/// Connects to the port, retrying every 50 ms for at most 5 s.
async fn connect_local(port: u16) -> TcpStream {
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing accepts on port {port}");
}

/// Waits (at most 5 s) until nothing accepts on the port any more.
async fn until_closed(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("port {port} still accepts");
}

fn listener(id: u32, port: u16, session: &str) -> Listener {
    Listener {
        id,
        local_port: port,
        target: format!("session:{session}/listener:{id}"),
    }
}

/// A client connection through the agent's listener arrives at the relay as a stream with
/// the listener's target, and bytes pass intact both ways.
async fn round_trip(session: &mut Session, port: u16, target: &str, payload: &[u8]) -> TcpStream {
    let mut client = connect_local(port).await;
    client.write_all(payload).await.unwrap();
    let offer = session.incoming.next().await.unwrap();
    assert_eq!(offer.target(), target);
    let mut stream = offer.accept();
    let mut got = vec![0u8; payload.len()];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, payload);
    let answer: Vec<u8> = payload.iter().rev().copied().collect();
    stream.write_all(&answer).await.unwrap();
    stream.flush().await.unwrap();
    let mut back = vec![0u8; payload.len()];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(back, answer);
    // Keep the relay's half alive as long as the client's.
    tokio::spawn(async move {
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    client
}

#[tokio::test]
async fn a_service_agent_opens_listeners_on_connect_and_closes_them_on_disconnect_or_timeout() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let mut relay = spawn_relay(&pki).await;
        let (token_port, grants) = spawn_token_endpoint(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        let config = agent_config(dir.path(), &pki, "service", relay.port, token_port, "");
        let shutdown = start(Agent::new(config).unwrap());
        let mut s = relay.accept("service-ep", Role::Service).await;
        assert_eq!(grants.load(Ordering::SeqCst), 1);

        let port = free_port().await;
        send(
            &mut s.control,
            ControlMessage::Connect {
                session: "s1".into(),
                listeners: vec![listener(0, port, "s1")],
                timeout_secs: 600,
            },
        )
        .await;
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut client = round_trip(&mut s, port, "session:s1/listener:0", &payload).await;

        send(
            &mut s.control,
            ControlMessage::Disconnect {
                session: "s1".into(),
                reason: DisconnectReason::Ended,
            },
        )
        .await;
        until_closed(port).await;
        // The open connection is closed with its listener.
        let mut rest = [0u8; 16];
        let ended = tokio::time::timeout(Duration::from_secs(5), client.read(&mut rest))
            .await
            .expect("the connection closes");
        assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");

        // A port that is taken is reported, not fatal: the session's other listener opens.
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let short = free_port().await;
        send(
            &mut s.control,
            ControlMessage::Connect {
                session: "s2".into(),
                listeners: vec![listener(0, taken_port, "s2"), listener(1, short, "s2")],
                timeout_secs: 1,
            },
        )
        .await;
        round_trip(&mut s, short, "session:s2/listener:1", b"second session").await;
        // A relay that does not offer lanes is never asked for one.
        assert_eq!(relay.others.load(Ordering::SeqCst), 0);
        // The session's timeout closes its listener without a disconnect.
        until_closed(short).await;
        shutdown.cancel();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn listeners_survive_a_reconnect_and_unannounced_sessions_close_after_the_grace() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let mut relay = spawn_relay(&pki).await;
        let (token_port, grants) = spawn_token_endpoint(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        let config = agent_config(dir.path(), &pki, "service", relay.port, token_port, "");
        let agent = Agent::new(config)
            .unwrap()
            .with_reannounce_grace(Duration::from_secs(1));
        let shutdown = start(agent);
        let mut s = relay.accept("service-ep", Role::Service).await;
        let (kept, dropped) = (free_port().await, free_port().await);
        send(
            &mut s.control,
            ControlMessage::Connect {
                session: "s1".into(),
                listeners: vec![listener(0, kept, "s1")],
                timeout_secs: 600,
            },
        )
        .await;
        send(
            &mut s.control,
            ControlMessage::Connect {
                session: "s2".into(),
                listeners: vec![listener(0, dropped, "s2")],
                timeout_secs: 600,
            },
        )
        .await;
        round_trip(&mut s, kept, "session:s1/listener:0", b"before").await;
        connect_local(dropped).await;

        // The relay goes away: both sockets drop.
        s.tunnel.close(GoAwayReason::ShuttingDown);
        drop(s);
        let mut s = relay.accept("service-ep", Role::Service).await;
        assert_eq!(grants.load(Ordering::SeqCst), 1, "the token is reused");
        send(
            &mut s.control,
            ControlMessage::Connect {
                session: "s1".into(),
                listeners: vec![listener(0, kept, "s1")],
                timeout_secs: 600,
            },
        )
        .await;
        round_trip(
            &mut s,
            kept,
            "session:s1/listener:0",
            b"after the reconnect",
        )
        .await;
        // s2 was not announced again: closed after the grace period.
        until_closed(dropped).await;
        connect_local(kept).await;
        shutdown.cancel();
    })
    .await
    .unwrap();
}

/// A TCP listener that counts the connections it gets and echoes.
async fn spawn_counting_echo() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, count)
}

/// The relay opens a stream to `target`; returns whether the agent refused it.
async fn refused(s: &Session, target: &str) -> bool {
    let mut stream = s.tunnel.open(target).unwrap();
    let _ = stream.write_all(b"x").await;
    let mut buf = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        other => panic!("{target}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_device_agent_dials_permitted_targets_and_refuses_forged_opens() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let mut relay = spawn_relay(&pki).await;
        let (token_port, _) = spawn_token_endpoint(&pki).await;
        let (echo, echo_count) = spawn_counting_echo().await;
        let (watched, watched_count) = spawn_counting_echo().await;
        let dir = tempfile::tempdir().unwrap();
        let allow = format!("allow = [\"127.0.0.1:*\", \"localhost:{echo}\"]\n");
        let config = agent_config(dir.path(), &pki, "device", relay.port, token_port, &allow);
        let shutdown = start(Agent::new(config).unwrap());
        let mut s = relay.accept("device-ep", Role::Device).await;
        send(
            &mut s.control,
            ControlMessage::Permit {
                session: "s1".into(),
                targets: vec![format!("127.0.0.1:{echo}"), format!("localhost:{watched}")],
                timeout_secs: 600,
            },
        )
        .await;
        // The control message and the stream travel on different sockets: give the permit a
        // moment to be applied (bounded retries of the permitted open).
        let mut stream = None;
        for _ in 0..50 {
            let mut candidate = s.tunnel.open(&format!("127.0.0.1:{echo}")).unwrap();
            candidate.write_all(b"permitted").await.unwrap();
            let mut got = [0u8; 9];
            match candidate.read_exact(&mut got).await {
                Ok(_) => {
                    assert_eq!(&got, b"permitted");
                    stream = Some(candidate);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(stream.is_some(), "the permitted target was never dialled");
        assert_eq!(echo_count.load(Ordering::SeqCst), 1);

        // Forged opens: a permitted host with another port, a permitted target outside the
        // allow list, a target no permit names, garbage.
        assert!(refused(&s, &format!("127.0.0.1:{watched}")).await);
        assert!(refused(&s, &format!("localhost:{watched}")).await);
        assert!(refused(&s, &format!("localhost:{echo}")).await);
        assert!(refused(&s, "session:s1/listener:0").await);

        // After the session's disconnect the permitted target is refused too, and the
        // connection dialled under it is closed.
        send(
            &mut s.control,
            ControlMessage::Disconnect {
                session: "s1".into(),
                reason: DisconnectReason::Ended,
            },
        )
        .await;
        let mut open = stream.unwrap();
        let mut buf = [0u8; 4];
        let closed = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf))
            .await
            .expect("the dialled connection closes");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        let mut after = false;
        for _ in 0..50 {
            if refused(&s, &format!("127.0.0.1:{echo}")).await {
                after = true;
                break;
            }
        }
        assert!(after);
        assert_eq!(
            watched_count.load(Ordering::SeqCst),
            0,
            "no TCP reached the watched port"
        );
        assert_eq!(
            echo_count.load(Ordering::SeqCst),
            1,
            "nothing dialled after the disconnect"
        );
        shutdown.cancel();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refused_endpoint_keeps_retrying() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let mut relay = spawn_relay(&pki).await;
        let (token_port, _) = spawn_token_endpoint(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        let config = agent_config(dir.path(), &pki, "device", relay.port, token_port, "");
        let shutdown = start(Agent::new(config).unwrap());
        let _first_tunnel = relay.tunnels.recv().await.unwrap();
        let mut control = relay.controls.recv().await.unwrap();
        assert!(matches!(
            recv(&mut control).await,
            ControlMessage::Hello { .. }
        ));
        send(
            &mut control,
            ControlMessage::Refused {
                reason: RefusalReason::Revoked,
                message: "the endpoint was revoked".into(),
            },
        )
        .await;
        drop(control);
        // The agent comes back (an operator may register it again).
        relay.accept("device-ep", Role::Device).await;
        shutdown.cancel();
    })
    .await
    .unwrap();
}

/// A service agent against a fake relay behind `fronted`, told of session `s1` with one
/// listener (`port`): it keeps spare open lanes for it.
struct ListeningAgent {
    session: Session,
    port: u16,
    shutdown: CancellationToken,
    _relay: FakeRelay,
    _dir: tempfile::TempDir,
}

async fn listening_service_agent(fronted: &FrontedLanes) -> ListeningAgent {
    let pki = pki();
    let mut relay = spawn_relay_with(&pki, Some(fronted)).await;
    let (token_port, _grants) = spawn_token_endpoint(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &pki, "service", relay.port, token_port, "");
    let shutdown = start(Agent::new(config).unwrap());
    let mut session = relay.accept("service-ep", Role::Service).await;
    let port = free_port().await;
    send(
        &mut session.control,
        ControlMessage::Connect {
            session: "s1".into(),
            listeners: vec![listener(0, port, "s1")],
            timeout_secs: 600,
        },
    )
    .await;
    ListeningAgent {
        session,
        port,
        shutdown,
        _relay: relay,
        _dir: dir,
    }
}

/// A relay offers framed lanes, but a front before it passes WebSocket upgrades only and
/// answers the framed lane's upgrade with 400: the agent goes on with WebSocket lanes.
#[tokio::test]
async fn framed_lanes_refused_on_the_way_give_way_to_websocket_lanes() {
    tokio::time::timeout(LIMIT, async {
        let (fronted, _) = FrontedLanes::new(true);
        let agent = listening_service_agent(&fronted).await;
        for _ in 0..200 {
            if fronted.websocket_lanes.load(Ordering::SeqCst) >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            fronted.framed_refused.load(Ordering::SeqCst) >= 1,
            "a framed lane was tried"
        );
        assert!(
            fronted.websocket_lanes.load(Ordering::SeqCst) >= 1,
            "WebSocket lanes followed"
        );
        agent.shutdown.cancel();
    })
    .await
    .unwrap();
}

/// A relay that offers framed lanes gets them: a client's connection to the session's
/// listener travels on a framed lane (its `Open` and bytes arrive in frames on the lane's
/// connection), and no WebSocket lane is opened.
#[tokio::test]
async fn a_stream_travels_on_a_framed_lane_where_the_relay_offers_them() {
    tokio::time::timeout(LIMIT, async {
        let (fronted, mut framed_streams) = FrontedLanes::new(false);
        let mut agent = listening_service_agent(&fronted).await;
        // A client's stream takes a spare lane once one is open; until then it opens on the
        // tunnel, and the client tries again.
        let mut on_lane = None;
        for _ in 0..50 {
            let mut client = connect_local(agent.port).await;
            client.write_all(b"on a framed lane").await.unwrap();
            tokio::select! {
                reported = framed_streams.recv() => {
                    on_lane = reported;
                    break;
                }
                offer = agent.session.incoming.next() => {
                    drop(offer);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let (target, first) = on_lane.expect("a stream on a framed lane");
        assert_eq!(target, "session:s1/listener:0");
        assert_eq!(&first[..], b"on a framed lane");
        assert_eq!(fronted.websocket_lanes.load(Ordering::SeqCst), 0);
        assert_eq!(fronted.framed_refused.load(Ordering::SeqCst), 0);
        agent.shutdown.cancel();
    })
    .await
    .unwrap();
}
