//! The agent's connection to the backend against in-test peers on loopback: an HTTP proxy
//! that demands Basic credentials, and a TLS WebSocket backend with its own CA.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use portico_endpoint::proxy;
use portico_endpoint::WebSocketTransport;
use portico_endpoint::{
    BackendUrl, ConnectError, Credentials, Dialer, EndpointConfig, ProxyCredentials,
    ProxyEnvironment, ProxyError, ProxyUrl, TokenError, TrustRoots,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{http, Message};

const TOKEN: &str = "endpoint-token-1";
const LIMIT: Duration = Duration::from_secs(10);

/// A CA and a certificate for `localhost` signed by it.
struct TestPki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

fn pki(ca_name: &str) -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
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

fn write_ca(dir: &tempfile::TempDir, pki: &TestPki) -> PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    path
}

/// A TLS server side presenting `pki`'s certificate for `localhost`.
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

/// A TLS WebSocket backend on 127.0.0.1 that wants `Bearer TOKEN` and echoes messages.
async fn spawn_backend(pki: &TestPki) -> u16 {
    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The callback's type is tungstenite's; its error is an HTTP response.
                #[allow(clippy::result_large_err)]
                let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    let auth = req.headers().get(http::header::AUTHORIZATION);
                    if auth.and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}")) {
                        Ok(resp)
                    } else {
                        Err(http::Response::builder()
                            .status(401)
                            .body(Some("bad token".into()))
                            .unwrap())
                    }
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, check).await else {
                    return;
                };
                for _ in 0..16 {
                    match ws.next().await {
                        Some(Ok(msg @ Message::Text(_))) => {
                            if ws.send(msg).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    port
}

/// A TLS token endpoint on 127.0.0.1 granting `client_credentials` to `ep-1`/`s3cr3t`.
async fn spawn_token_endpoint(pki: &TestPki) -> u16 {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};

    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let service = hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                let path_ok =
                    req.method() == http::Method::POST && req.uri().path() == "/uaa/oauth/token";
                let form = req.into_body().collect().await?.to_bytes();
                let pairs: Vec<(String, String)> =
                    url::form_urlencoded::parse(&form).into_owned().collect();
                let want = [
                    ("grant_type".to_string(), "client_credentials".to_string()),
                    ("client_id".to_string(), "ep-1".to_string()),
                    ("client_secret".to_string(), "s3cr3t".to_string()),
                ];
                let (status, body) = if path_ok && pairs == want {
                    (
                        200,
                        r#"{"access_token":"endpoint-token-1","token_type":"bearer","expires_in":900}"#,
                    )
                } else {
                    (
                        401,
                        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
                    )
                };
                Ok::<_, hyper::Error>(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap(),
                )
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service),
            );
        }
    });
    port
}

/// An HTTP proxy on 127.0.0.1 that requires `user:password` and answers anything else with
/// `refusal` (407 as the standard says, or 401 as tinyproxy does). It dials every CONNECT
/// target on 127.0.0.1, whatever the host name.
async fn spawn_proxy(refusal: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:pass word")
    );
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let expected = expected.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_)))
                    || req.method != Some("CONNECT")
                {
                    let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
                    return;
                }
                let authorized = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("proxy-authorization")
                        && h.value == expected.as_bytes()
                });
                if !authorized {
                    let answer = format!(
                        "HTTP/1.1 {refusal} Authentication Required\r\n\
                         Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                let target = req.path.unwrap_or("");
                let Some(port) = target
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                else {
                    let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    port
}

/// A plain TCP echo server, the far end of a bare proxy tunnel.
async fn spawn_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    port
}

fn proxy_url(port: u16, password: &str) -> ProxyUrl {
    let password = password.replace(' ', "%20");
    ProxyUrl::parse(&format!("http://user:{password}@127.0.0.1:{port}")).unwrap()
}

fn backend(port: u16) -> BackendUrl {
    BackendUrl::parse(&format!("https://localhost:{port}")).unwrap()
}

async fn echo_once(dialer: &Dialer) -> Result<String, ConnectError> {
    let mut ws = dialer.open("/ccf/", TOKEN).await?;
    ws.send(Message::text("hello backend")).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    Ok(reply.into_text().unwrap().to_string())
}

#[tokio::test]
async fn proxy_tunnel_carries_bytes_with_the_right_credentials() {
    tokio::time::timeout(LIMIT, async {
        let proxy_port = spawn_proxy(407).await;
        let echo_port = spawn_echo().await;
        let mut stream = TcpStream::connect(("127.0.0.1", proxy_port)).await.unwrap();
        let creds = ProxyCredentials {
            user: "user".into(),
            password: "pass word".into(),
        };
        proxy::open_tunnel(&mut stream, &format!("localhost:{echo_port}"), Some(&creds))
            .await
            .unwrap();
        stream.write_all(b"through the tunnel").await.unwrap();
        let mut back = [0u8; 18];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"through the tunnel");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn wrong_proxy_credentials_are_reported_for_407_and_401() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki("Portico Test CA");
        let backend_port = spawn_backend(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        let roots = TrustRoots::system_and(Some(&write_ca(&dir, &pki))).unwrap();
        for refusal in [407, 401] {
            let proxy_port = spawn_proxy(refusal).await;
            let dialer = Dialer::new(
                backend(backend_port),
                Some(proxy_url(proxy_port, "wrong")),
                roots.clone(),
            );
            let err = echo_once(&dialer).await.unwrap_err();
            assert!(
                matches!(
                    &err,
                    ConnectError::Proxy {
                        source: ProxyError::CredentialsRefused { .. },
                        ..
                    }
                ),
                "{refusal}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("the proxy refused the credentials"), "{msg}");
            assert!(msg.contains(&refusal.to_string()), "{msg}");
            assert!(
                !msg.contains("wrong"),
                "the password must not be shown: {msg}"
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn through_the_proxy_to_a_backend_whose_ca_is_configured() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki("Portico Test CA");
        let backend_port = spawn_backend(&pki).await;
        let proxy_port = spawn_proxy(407).await;
        let dir = tempfile::tempdir().unwrap();
        let roots = TrustRoots::system_and(Some(&write_ca(&dir, &pki))).unwrap();
        let dialer = Dialer::new(
            backend(backend_port),
            Some(proxy_url(proxy_port, "pass word")),
            roots.clone(),
        );
        assert_eq!(echo_once(&dialer).await.unwrap(), "hello backend");

        // Directly as well, and a wrong bearer token is the backend's refusal.
        let direct = Dialer::new(backend(backend_port), None, roots);
        assert_eq!(echo_once(&direct).await.unwrap(), "hello backend");
        let err = direct.open("/ccf/", "stolen").await.unwrap_err();
        assert!(
            matches!(err, ConnectError::Unauthorized { status } if status == 401),
            "{err:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_reported_as_interception() {
    tokio::time::timeout(LIMIT, async {
        // The "backend" presents a certificate of an inspecting proxy's CA; the agent trusts
        // the system roots and a different private CA.
        let interceptor = pki("Corp TLS Inspection CA");
        let backend_port = spawn_backend(&interceptor).await;
        let proxy_port = spawn_proxy(407).await;
        let dir = tempfile::tempdir().unwrap();
        let unrelated = pki("Portico Test CA");
        let roots = TrustRoots::system_and(Some(&write_ca(&dir, &unrelated))).unwrap();
        for proxy in [None, Some(proxy_url(proxy_port, "pass word"))] {
            let dialer = Dialer::new(backend(backend_port), proxy, roots.clone());
            let err = echo_once(&dialer).await.unwrap_err();
            let ConnectError::Intercepted { issuer, .. } = &err else {
                panic!("expected interception, got {err:?}");
            };
            assert_eq!(issuer.as_deref(), Some("CN=Corp TLS Inspection CA"));
            let msg = err.to_string();
            assert!(
                msg.contains("intercepted by a TLS-inspecting proxy"),
                "{msg}"
            );
            assert!(msg.contains("Corp TLS Inspection CA"), "{msg}");
            assert!(msg.contains("localhost"), "{msg}");
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn no_proxy_sends_the_backend_around_a_dead_proxy() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki("Portico Test CA");
        let backend_port = spawn_backend(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        write_ca(&dir, &pki);
        // A port that nobody listens on: going through the "proxy" would fail.
        let dead_proxy = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let path = dir.path().join("endpoint.toml");
        std::fs::write(
            &path,
            format!(
                "role = \"service\"\nbackend = \"https://localhost:{backend_port}\"\n\
                 credentials = \"creds.toml\"\nca_file = \"ca.pem\"\n"
            ),
        )
        .unwrap();
        let env = |no_proxy: Option<&str>| ProxyEnvironment {
            https_proxy: Some(format!("http://127.0.0.1:{dead_proxy}")),
            no_proxy: no_proxy.map(str::to_string),
        };

        let bypass =
            EndpointConfig::load(&path, &env(Some("127.0.0.1,.localhost,localhost"))).unwrap();
        assert!(bypass.proxy.is_none());
        let dialer = Dialer::from_config(&bypass).unwrap();
        assert_eq!(echo_once(&dialer).await.unwrap(), "hello backend");

        let proxied = EndpointConfig::load(&path, &env(Some("example.org"))).unwrap();
        let err = echo_once(&Dialer::from_config(&proxied).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::ProxyUnreachable { .. }),
            "{err:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_token_comes_through_the_proxy_and_wrong_credentials_are_named() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki("Portico Test CA");
        let token_port = spawn_token_endpoint(&pki).await;
        let proxy_port = spawn_proxy(407).await;
        let dir = tempfile::tempdir().unwrap();
        let roots = TrustRoots::system_and(Some(&write_ca(&dir, &pki))).unwrap();
        let dialer = Dialer::new(
            backend(token_port),
            Some(proxy_url(proxy_port, "pass word")),
            roots,
        );
        let good = Credentials::new("ep-1", "s3cr3t");
        let token = dialer.fetch_token(&good).await.unwrap();
        assert_eq!(token.value, TOKEN);
        assert_eq!(token.expires_in, Some(Duration::from_secs(900)));

        let stolen = Credentials {
            client_secret: "guess".into(),
            ..good
        };
        let err = dialer.fetch_token(&stolen).await.unwrap_err();
        assert!(
            matches!(err, TokenError::Refused { status: 401, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("invalid_client"), "{err}");
    })
    .await
    .unwrap();
}

/// A TLS backend that runs the relay's side of a tunnel on the first WebSocket it accepts,
/// opens one stream to the endpoint, and reports what came back on it.
async fn spawn_relay(pki: &TestPki) -> (u16, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (report, reported) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let ws = tokio_tungstenite::accept_async(tls).await.unwrap();
        let (relay, _incoming) = portico_tunnel::Tunnel::new(
            WebSocketTransport::new(ws),
            portico_tunnel::Role::Relay,
            portico_tunnel::TunnelConfig::default(),
        );
        let mut stream = relay.open("mapping:1").unwrap();
        stream.write_all(b"hello device").await.unwrap();
        let mut back = vec![0u8; 12];
        stream.read_exact(&mut back).await.unwrap();
        let _ = report.send(back);
    });
    (port, reported)
}

#[tokio::test]
async fn a_tunnel_runs_over_the_websocket_through_the_proxy() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki("Portico Test CA");
        let (relay_port, reported) = spawn_relay(&pki).await;
        let proxy_port = spawn_proxy(407).await;
        let dir = tempfile::tempdir().unwrap();
        let roots = TrustRoots::system_and(Some(&write_ca(&dir, &pki))).unwrap();
        let dialer = Dialer::new(
            backend(relay_port),
            Some(proxy_url(proxy_port, "pass word")),
            roots,
        );
        let ws = dialer.open("/mts/", TOKEN).await.unwrap();
        let (_device, mut incoming) = portico_tunnel::Tunnel::new(
            WebSocketTransport::new(ws),
            portico_tunnel::Role::Device,
            portico_tunnel::TunnelConfig::default(),
        );
        let offer = incoming.next().await.unwrap();
        assert_eq!(offer.target(), "mapping:1");
        let mut stream = offer.accept();
        let mut got = vec![0u8; 12];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"hello device");
        stream.write_all(b"hello relay!").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(reported.await.unwrap(), b"hello relay!");
    })
    .await
    .unwrap();
}
