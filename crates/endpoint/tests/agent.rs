//! The running agent against a fake relay in the test (loopback only): a TLS server with
//! `/mts/` (a `portico_tunnel` relay) and `/ccf/` (control messages), a token endpoint and a
//! registration API, all trusting one test CA.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming as Body};
use portico_endpoint::{
    Agent, Backoff, Dialer, EndpointConfig, ProxyEnvironment, TrustRoots, WebSocketTransport,
};
use portico_tunnel::control::{ControlMessage, DisconnectReason, Listener, RefusalReason};
use portico_tunnel::tunnel::{Incoming, TunnelHandle};
use portico_tunnel::{GoAwayReason, Role, TunnelConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{http, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "agent-token-1";
const LIMIT: Duration = Duration::from_secs(30);

struct TestPki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portico Agent Test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        leaf: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

fn tls_acceptor(pki: &TestPki) -> tokio_rustls::TlsAcceptor {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![pki.leaf.clone()],
        PrivateKeyDer::Pkcs8(pki.leaf_key.clone_key()),
    )
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

type ServerSocket = WebSocketStream<TlsStream<TcpStream>>;

/// The fake relay's two sockets as the agent opens them.
struct FakeRelay {
    port: u16,
    tunnels: mpsc::UnboundedReceiver<(TunnelHandle, Incoming)>,
    controls: mpsc::UnboundedReceiver<ServerSocket>,
}

/// Accepts up to 16 WebSockets that carry `Bearer TOKEN`: `/mts/` becomes a relay-role
/// tunnel, `/ccf/` is handed over as it is.
async fn spawn_relay(pki: &TestPki) -> FakeRelay {
    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tunnel_tx, tunnels) = mpsc::unbounded_channel();
    let (control_tx, controls) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let path = Arc::new(std::sync::Mutex::new(String::new()));
            let seen = path.clone();
            #[allow(clippy::result_large_err)]
            let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                *seen.lock().unwrap() = req.uri().path().to_string();
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

/// A token endpoint granting `TOKEN` to `ep-1`/`s3cr3t`; counts the grants.
async fn spawn_token_endpoint(pki: &TestPki) -> (u16, Arc<AtomicUsize>) {
    let grants = Arc::new(AtomicUsize::new(0));
    let counted = grants.clone();
    let port = serve_https(pki, move |req| {
        let counted = counted.clone();
        async move {
            let path_ok = req.uri().path() == "/uaa/oauth/token";
            let form = req.into_body().collect().await.unwrap().to_bytes();
            let form = String::from_utf8_lossy(&form).into_owned();
            if path_ok && form.contains("client_id=ep-1") && form.contains("client_secret=s3cr3t")
            {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    r#"{{"access_token":"{TOKEN}","token_type":"bearer","expires_in":3600}}"#
                );
                (200, body)
            } else {
                (401, r#"{"error":"invalid_client"}"#.to_string())
            }
        }
    })
    .await;
    (port, grants)
}

/// A small HTTPS server answering every request with `answer` (status, JSON body).
async fn serve_https<F, Fut>(pki: &TestPki, answer: F) -> u16
where
    F: Fn(http::Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, String)> + Send,
{
    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let answer = answer.clone();
            let service = hyper::service::service_fn(move |req| {
                let answer = answer.clone();
                async move {
                    let (status, body) = answer(req).await;
                    Ok::<_, hyper::Error>(
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service),
            );
        }
    });
    port
}

/// Writes the agent's configuration and credentials into `dir`.
fn agent_config(
    dir: &Path,
    pki: &TestPki,
    role: &str,
    relay: u16,
    token: u16,
    extra: &str,
) -> EndpointConfig {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let creds = dir.join("creds.toml");
    std::fs::write(
        &creds,
        format!(
            "client_id = \"ep-1\"\nclient_secret = \"s3cr3t\"\ntenant = \"abc\"\n\
             endpoint = \"{role}-ep\"\nkind = \"{role}\"\n"
        ),
    )
    .unwrap();
    set_private(&creds);
    let config = dir.join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "role = \"{role}\"\nbackend = \"https://localhost:{relay}\"\n\
             token_url = \"https://localhost:{token}/uaa/oauth/token\"\n\
             api = \"https://localhost:{relay}\"\ncredentials = \"creds.toml\"\n\
             ca_file = \"ca.pem\"\nproxy = \"direct\"\n{extra}"
        ),
    )
    .unwrap();
    EndpointConfig::load(&config, &ProxyEnvironment::default()).unwrap()
}

fn set_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
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

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
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
async fn a_service_agent_opens_listeners_on_connect_and_closes_them_on_disconnect() {
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
        round_trip(&mut s, kept, "session:s1/listener:0", b"after the reconnect").await;
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
        assert_eq!(watched_count.load(Ordering::SeqCst), 0, "no TCP reached the watched port");
        assert_eq!(echo_count.load(Ordering::SeqCst), 1, "nothing dialled after the disconnect");
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
        assert!(matches!(recv(&mut control).await, ControlMessage::Hello { .. }));
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

#[tokio::test]
async fn registration_writes_a_private_credentials_file_and_wrong_codes_are_explained() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let api = serve_https(&pki, |req: http::Request<Body>| async move {
            let path_ok = req.method() == http::Method::POST
                && req.uri().path() == "/api/endpointregistration/v1/register";
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if path_ok && json["code"] == "K7QP-2MZX" {
                (
                    200,
                    r#"{"tenant":"abc","endpoint":"press-7-ep","kind":"device","client_id":"ep-9","client_secret":"s3cr3t-9"}"#
                        .to_string(),
                )
            } else {
                (
                    400,
                    r#"{"error":"Bad Request","message":"the registration code is not valid"}"#
                        .to_string(),
                )
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        let roots = TrustRoots::only(&dir.path().join("ca.pem")).unwrap();
        let api_url = portico_endpoint::BackendUrl::parse(&format!("https://localhost:{api}")).unwrap();
        let dialer = Dialer::new(api_url, None, roots);
        let path: PathBuf = dir.path().join("creds.toml");

        let wrong = portico_endpoint::register::register(&dialer, "WRONG", &path)
            .await
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("the registration code is not valid"), "{wrong}");
        assert!(!path.exists());

        let done = portico_endpoint::register::register(&dialer, " K7QP-2MZX ", &path)
            .await
            .unwrap();
        assert_eq!(
            (done.tenant.as_str(), done.endpoint.as_str(), done.kind.as_str()),
            ("abc", "press-7-ep", "device")
        );
        assert!(!format!("{done:?}").contains("s3cr3t"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let creds = portico_endpoint::Credentials::load(&path).unwrap();
        assert_eq!(creds.client_secret, "s3cr3t-9");
        assert_eq!(creds.endpoint.as_deref(), Some("press-7-ep"));
    })
    .await
    .unwrap();
}
