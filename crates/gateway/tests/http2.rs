//! HTTP/2 from clients on the TLS listener (ALPN h2): the same routing, headers and
//! errors as HTTP/1.1, streaming bodies both ways, the header list limit, parallel
//! streams on one connection, the advertised settings, and GOAWAY at shutdown.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use bytes::Bytes;
use futures_util::stream;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_gateway::body::{boxed, empty, Body};
use portico_gateway::tls::{self, dev_cert_names, ensure_dev_cert, DevCert};
use portico_gateway::{Gateway, GatewayConfig, Services};
use portico_store::Registry;
use rustls::pki_types::ServerName;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

const WEBAPP_HOST: &str = "abc-assetmanager-xyz.eu1.portico.localhost";
const STREAMS_HOST: &str = "abc-streams.eu1.portico.localhost";
const GATEWAY_HOST: &str = "gateway.eu1.portico.localhost";

/// A gateway on a loopback TLS listener with a development certificate.
struct TlsGateway {
    gateway: Gateway,
    addr: SocketAddr,
    shutdown: CancellationToken,
    served: JoinHandle<()>,
    /// The development CA the certificate is signed by.
    ca: rustls::RootCertStore,
    dir: tempfile::TempDir,
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_tls(registry: &Registry, tweak: impl FnOnce(&mut GatewayConfig)) -> TlsGateway {
    let dir = tempfile::tempdir().unwrap();
    let files = DevCert::in_dir(dir.path());
    let names = dev_cert_names(&["portico.localhost".into()], &["eu1".into()]);
    ensure_dev_cert(&files, &names).unwrap();
    let server = tls::server_config(
        tls::load_certs(&files.cert).unwrap(),
        tls::load_key(&files.key).unwrap(),
    )
    .unwrap();
    let mut ca = rustls::RootCertStore::empty();
    for cert in tls::load_certs(&files.ca).unwrap() {
        ca.add(cert).unwrap();
    }

    let mut config = GatewayConfig::new(vec!["portico.localhost".into()], vec!["eu1".into()]);
    tweak(&mut config);
    let gateway = Gateway::new(config, Services::new());
    assert!(gateway.install(registry).is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = gateway.clone();
    let token = shutdown.clone();
    let acceptor = TlsAcceptor::from(server);
    let served = tokio::spawn(async move { serving.serve(listener, Some(acceptor), token).await });
    TlsGateway {
        gateway,
        addr,
        shutdown,
        served,
        ca,
        dir,
    }
}

impl TlsGateway {
    /// A TLS connection offering `alpn`; returns the stream and the protocol chosen.
    async fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.ca.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(WEBAPP_HOST).unwrap(), tcp)
            .await
            .unwrap()
    }

    /// An HTTP/2 connection: its request sender, and the task driving it.
    async fn h2(&self) -> (SendRequest<Body>, JoinHandle<Result<(), hyper::Error>>) {
        let stream = self.tls(&[b"h2"]).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        (sender, tokio::spawn(connection))
    }
}

fn request(method: Method, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("https://{host}{path}"))
}

fn get_request(host: &str, path: &str) -> Request<Body> {
    request(Method::GET, host, path).body(empty()).unwrap()
}

async fn send(sender: &mut SendRequest<Body>, request: Request<Body>) -> Response<Incoming> {
    sender.ready().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), sender.send_request(request))
        .await
        .expect("an answer within 20 s")
        .unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).to_string()
}

/// Counts a response body's bytes as they stream, checking each is `byte`.
async fn count(response: Response<Incoming>, byte: u8) -> usize {
    let mut body = response.into_body();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(data.iter().all(|b| *b == byte));
            total += data.len();
        }
    }
    total
}

/// A backend for the streaming tests: `/echo` streams the request body back as it comes;
/// `/pair` answers once a second `/pair` request is in flight with it (or says `alone`
/// after 10 s); `/hop` answers with connection-specific headers.
async fn streams_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pair = Arc::new(tokio::sync::Barrier::new(2));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let pair = pair.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let pair = pair.clone();
                    async move { Ok::<_, Infallible>(streams_answer(req, &pair).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn streams_answer(req: Request<Incoming>, pair: &tokio::sync::Barrier) -> Response<Body> {
    match req.uri().path() {
        "/echo" => Response::new(boxed(req.into_body())),
        "/pair" => {
            let met = tokio::time::timeout(Duration::from_secs(10), pair.wait()).await;
            let text = if met.is_ok() { "paired" } else { "alone" };
            Response::new(boxed(Full::new(Bytes::from_static(text.as_bytes()))))
        }
        "/hop" => Response::builder()
            .header("connection", "x-private")
            .header("x-private", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("upgrade", "h2c")
            .header("x-kept", "1")
            .body(boxed(Full::new(Bytes::from_static(b"hop"))))
            .unwrap(),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(boxed(Full::new(Bytes::from_static(b"no such path"))))
            .unwrap(),
    }
}

async fn registry() -> Registry {
    let (a, b, s) = (
        backend("A").await,
        backend("B").await,
        streams_backend().await,
    );
    let mut registry = example_registry(a, b);
    registry.webapps.push(webapp("streams", None, s, &["abc"]));
    registry
}

#[tokio::test]
async fn h2_requests_are_routed_with_the_gateway_headers() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let (mut sender, _conn) = gw.h2().await;

    let mut page = get_request(WEBAPP_HOST, "/page?x=1");
    page.headers_mut().append("cookie", "a=1".parse().unwrap());
    page.headers_mut().append("cookie", "b=2".parse().unwrap());
    let response = send(&mut sender, page).await;
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(h["x-backend"], "A");
    assert_eq!(
        h["cache-control"],
        "no-cache, no-store, max-age=0, must-revalidate"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-xss-protection"], "1; mode=block");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("static.eu1.portico.localhost"));
    // Pragma and Expires are for HTTP/1.0 clients only (GW-17).
    assert!(
        !h.contains_key("pragma") && !h.contains_key("expires"),
        "{h:?}"
    );
    let seen: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(seen["uri"], "/page?x=1");
    let headers = &seen["headers"];
    assert_eq!(headers["x-forwarded-host"], WEBAPP_HOST);
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(
        headers["cookie"], "a=1; b=2",
        "cookie fields joined for HTTP/1.1"
    );
    assert_eq!(headers["x-request-id"], h["x-request-id"].to_str().unwrap());

    // An API on the gateway host, on the same connection.
    let response = send(
        &mut sender,
        get_request(GATEWAY_HOST, "/api/iot-xyz/v3/assets/1?y=2"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backend"], "B");
    assert!(!response.headers().contains_key("x-content-type-options"));
    let seen: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(seen["uri"], "/assets/1?y=2");
}

#[tokio::test]
async fn h2_errors_have_the_gateway_error_body() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let (mut sender, _conn) = gw.h2().await;
    let response = send(
        &mut sender,
        get_request("abc-nothing.eu1.portico.localhost", "/"),
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], 404);
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()));

    let mut xml = get_request(GATEWAY_HOST, "/api/iot-xyz/v4/assets");
    xml.headers_mut()
        .insert("accept", "application/xml".parse().unwrap());
    let response = send(&mut sender, xml).await;
    assert_eq!(response.status(), 404);
    assert!(text(response).await.contains("<status>404</status>"));

    // A target that is not RFC 3986 is refused as on HTTP/1.1.
    let response = send(&mut sender, get_request(WEBAPP_HOST, "/a/../b")).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn h2_bodies_stream_both_ways() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 64; // 4 MiB each way
    let gw = start_tls(&registry().await, |_| {}).await;
    let (mut sender, _conn) = gw.h2().await;
    let upload = stream::iter(
        (0..CHUNKS).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'u'; CHUNK])))),
    );
    let request = request(Method::POST, STREAMS_HOST, "/echo")
        .body(boxed(StreamBody::new(upload)))
        .unwrap();
    let response = send(&mut sender, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(count(response, b'u').await, CHUNK * CHUNKS);

    // A response the backend streams in chunks, 1.6 MB.
    let response = send(&mut sender, get_request(WEBAPP_HOST, "/stream")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(count(response, b'x').await, STREAM_CHUNKS * STREAM_CHUNK);
}

#[tokio::test]
async fn h2_header_lists_over_the_limit_are_refused() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let (mut sender, _conn) = gw.h2().await;
    // Over the 16 kB limit: the gateway's 431 with its error body.
    let mut big = get_request(WEBAPP_HOST, "/");
    big.headers_mut()
        .insert("x-big", "b".repeat(17_000).parse().unwrap());
    let response = send(&mut sender, big).await;
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], 431);

    // Over the connection's ceiling (twice the limit): the HTTP/2 layer's bare 431.
    let mut huge = get_request(WEBAPP_HOST, "/");
    huge.headers_mut()
        .insert("x-huge", "h".repeat(40_000).parse().unwrap());
    sender.ready().await.unwrap();
    match sender.send_request(huge).await {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(e) => panic!("the stream was not answered: {e}"),
    }

    // The connection serves on.
    let response = send(&mut sender, get_request(WEBAPP_HOST, "/")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        gw.gateway.config().max_header_size,
        16_000,
        "the limit the test assumes"
    );
}

#[tokio::test]
async fn two_h2_streams_run_in_parallel_on_one_connection() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let (sender, _conn) = gw.h2().await;
    // `/pair` answers only once both requests are at the backend at the same time.
    let ask = |mut sender: SendRequest<Body>| async move {
        text(send(&mut sender, get_request(STREAMS_HOST, "/pair")).await).await
    };
    let (one, two) = tokio::join!(ask(sender.clone()), ask(sender.clone()));
    assert_eq!((one.as_str(), two.as_str()), ("paired", "paired"));
}

#[tokio::test]
async fn hop_by_hop_headers_never_reach_an_h2_client() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let (mut sender, _conn) = gw.h2().await;
    // An HTTP/2 client treats a response with connection-specific fields as malformed;
    // this one arrives intact.
    let response = send(&mut sender, get_request(STREAMS_HOST, "/hop")).await;
    assert_eq!(response.status(), 200);
    let h = response.headers();
    for name in [
        "connection",
        "x-private",
        "keep-alive",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(!h.contains_key(name), "{name} sent: {h:?}");
    }
    assert_eq!(h["x-kept"], "1");
    assert_eq!(text(response).await, "hop");
}

/// The server's first frame is its SETTINGS (RFC 9113 §3.4): read raw, as sent.
#[tokio::test]
async fn h2_settings_limit_streams_and_headers_and_offer_no_websockets() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let mut stream = gw.tls(&[b"h2"]).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    assert_eq!(head[3], 0x4, "a SETTINGS frame first");
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.unwrap();
    let settings: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect();
    const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
    assert!(
        settings.contains(&(MAX_CONCURRENT_STREAMS, 128)),
        "{settings:?}"
    );
    assert!(
        settings.contains(&(MAX_HEADER_LIST_SIZE, 2 * 16_000)),
        "{settings:?}"
    );
    assert!(
        settings
            .iter()
            .all(|(id, value)| *id != ENABLE_CONNECT_PROTOCOL || *value == 0),
        "RFC 8441 WebSockets are not offered: {settings:?}"
    );
}

#[tokio::test]
async fn clients_without_h2_get_http_1_1_on_the_same_listener() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let offers: [&[&[u8]]; 2] = [&[b"http/1.1"], &[]];
    for alpn in offers {
        let mut stream = gw.tls(alpn).await;
        stream
            .write_all(
                format!("GET / HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
            .await
            .unwrap()
            .ok();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.to_ascii_lowercase().contains("x-backend: a"), "{text}");
    }
}

#[tokio::test]
async fn curl_negotiates_h2() {
    let gw = start_tls(&registry().await, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    // The CA file of the development certificate the gateway serves.
    std::fs::copy(gw.dir.path().join("dev-ca.pem"), &ca).unwrap();
    let port = gw.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--http2", "--max-time", "20", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}"])
        .arg("--cacert")
        .arg(&ca)
        .args(["--resolve", &format!("{WEBAPP_HOST}:{port}:127.0.0.1")])
        .arg(format!("https://{WEBAPP_HOST}:{port}/"))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
}

#[tokio::test]
async fn shutdown_sends_goaway_and_lets_streams_in_flight_finish() {
    let mut gw = start_tls(&registry().await, |_| {}).await;
    let (mut sender, conn) = gw.h2().await;
    sender.ready().await.unwrap();
    // `/slow` answers after 3 s.
    let slow = tokio::spawn(sender.send_request(get_request(WEBAPP_HOST, "/slow")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.shutdown.cancel();

    let response = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(text(response).await, "slow");
    // GOAWAY: the client's connection ends cleanly once its stream is done.
    let ended = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the connection closed after GOAWAY")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    // The gateway is done, and its listener closed: new connections are refused.
    tokio::time::timeout(Duration::from_secs(5), &mut gw.served)
        .await
        .expect("serve returned once the connection was done")
        .unwrap();
    assert!(TcpStream::connect(gw.addr).await.is_err());
}

#[tokio::test]
async fn an_h2_connection_over_the_limit_gets_503_with_retry_after() {
    let gw = start_tls(&registry().await, |c| c.max_connections = 1).await;
    let (mut first, _conn) = gw.h2().await;
    assert_eq!(
        send(&mut first, get_request(WEBAPP_HOST, "/"))
            .await
            .status(),
        200
    );

    let (mut second, _conn2) = gw.h2().await;
    let response = send(&mut second, get_request(WEBAPP_HOST, "/")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], 503);
}

/// No h2c: `curl --http2` on plain HTTP asks for `Upgrade: h2c` and stays on HTTP/1.1.
#[tokio::test]
async fn the_plain_listener_answers_an_h2c_upgrade_with_http_1_1() {
    let registry = registry().await;
    let gw = start(&registry, |_| {}).await;
    let port = gw.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--http2", "--max-time", "20", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}"])
        .args(["--resolve", &format!("{WEBAPP_HOST}:{port}:127.0.0.1")])
        .arg(format!("http://{WEBAPP_HOST}:{port}/"))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1 200");
}
