//! Request limits (GW-13) end to end on loopback: request and multipart part sizes
//! counted while bodies stream (413 read by clients that are still sending), the idle
//! timeout of keep-alive connections, stalled responses and WebSockets, and the head
//! deadline against slow-header clients. Big bodies are generated while they are sent.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use portico_gateway::body::{boxed, Body};
use portico_store::Registry;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "abc-assetmanager-xyz.eu1.portico.localhost";
const BOUNDARY: &str = "----porticoTestBoundary7MA4YWxkTrZu0gW";
/// Bodies are sent in pieces of this size: large pieces keep debug builds quick.
const PIECE: usize = 1_000_000;
const MB: u64 = 1_000_000;

/// One million bytes of letters (no CR, so never a delimiter), shared by every body.
fn piece() -> Bytes {
    static PIECE_BYTES: OnceLock<Bytes> = OnceLock::new();
    PIECE_BYTES
        .get_or_init(|| (0..PIECE).map(|i| b'a' + (i % 26) as u8).collect())
        .clone()
}

/// A backend that counts the request heads it saw. It answers uploads with the number
/// of body bytes and their SHA-256; `/late` answers after 2 s; `/stall` sends part of
/// a body and then nothing; `/ws` accepts a WebSocket upgrade and echoes bytes.
struct Recorder {
    addr: SocketAddr,
    heads: Arc<AtomicUsize>,
    /// Uploads read to their end.
    uploads: Arc<AtomicUsize>,
}

async fn recorder() -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let uploads = Arc::new(AtomicUsize::new(0));
    let (counted, completed) = (heads.clone(), uploads.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (heads, uploads) = (counted.clone(), completed.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    heads.fetch_add(1, Ordering::SeqCst);
                    record(req, uploads.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Recorder {
        addr,
        heads,
        uploads,
    }
}

async fn record(
    mut req: Request<Incoming>,
    uploads: Arc<AtomicUsize>,
) -> Result<Response<Body>, Infallible> {
    let text = |s: &'static str| boxed(Full::new(Bytes::from_static(s.as_bytes())));
    match req.uri().path() {
        "/late" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(Response::new(text("late")))
        }
        "/stall" => {
            let first = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                b"partial",
            )))]);
            let body = StreamBody::new(futures_util::StreamExt::chain(first, stream::pending()));
            Ok(Response::new(boxed(body)))
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            let response = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                .body(text(""))
                .unwrap();
            Ok(response)
        }
        _ => {
            let mut body = req.into_body();
            let (mut bytes, mut hash) = (0u64, Sha256::new());
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Ok(Response::builder()
                        .status(400)
                        .body(text("aborted"))
                        .unwrap());
                };
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                    hash.update(data);
                }
            }
            uploads.fetch_add(1, Ordering::SeqCst);
            let answer =
                serde_json::json!({"bytes": bytes, "sha256": format!("{:x}", hash.finalize())});
            Ok(Response::new(boxed(Full::new(Bytes::from(
                answer.to_string(),
            )))))
        }
    }
}

fn registry(backend: SocketAddr) -> Registry {
    let mut app = webapp("assetmanager", Some("xyz"), backend, &["abc"]);
    app.websockets = vec!["/ws".into()];
    Registry {
        tenants: vec![tenant("abc")],
        webapps: vec![app],
        apis: vec![],
    }
}

/// A body as pieces: literal bytes, or a number of shared one-million-byte pieces.
enum Part {
    Text(String),
    Pieces(usize),
}

fn body_len(parts: &[Part]) -> u64 {
    parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => t.len() as u64,
            Part::Pieces(n) => (*n * PIECE) as u64,
        })
        .sum()
}

/// A multipart/form-data body with one file part per size (in millions of bytes).
fn multipart(files_mb: &[usize]) -> Vec<Part> {
    let mut parts = Vec::new();
    for (i, mb) in files_mb.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        parts.push(Part::Text(format!(
            "{lead}--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file{i}\"; filename=\"f{i}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )));
        parts.push(Part::Pieces(*mb));
    }
    parts.push(Part::Text(format!("\r\n--{BOUNDARY}--\r\n")));
    parts
}

/// Writes `parts` (chunked or as they are), hashing what makes up the body. Returns
/// the bytes written and their hash, or where writing failed.
async fn send_body(
    w: &mut OwnedWriteHalf,
    parts: &[Part],
    chunked: bool,
) -> Result<(u64, String), (u64, std::io::Error)> {
    let (mut sent, mut hash) = (0u64, Sha256::new());
    for part in parts {
        let pieces: Vec<Bytes> = match part {
            Part::Text(t) => vec![Bytes::from(t.clone())],
            Part::Pieces(n) => vec![piece(); *n],
        };
        for data in pieces {
            let result = if chunked {
                let size = format!("{:x}\r\n", data.len());
                match w.write_all(size.as_bytes()).await {
                    Ok(()) => w.write_all(&data).await.and(w.write_all(b"\r\n").await),
                    Err(e) => Err(e),
                }
            } else {
                w.write_all(&data).await
            };
            result.map_err(|e| (sent, e))?;
            sent += data.len() as u64;
            hash.update(&data);
        }
    }
    if chunked {
        w.write_all(b"0\r\n\r\n").await.map_err(|e| (sent, e))?;
    }
    Ok((sent, format!("{:x}", hash.finalize())))
}

fn upload_head(path: &str, parts: &[Part], chunked: bool, multipart: bool) -> String {
    let framing = match chunked {
        true => "Transfer-Encoding: chunked".to_string(),
        false => format!("Content-Length: {}", body_len(parts)),
    };
    let content_type = match multipart {
        true => format!("multipart/form-data; boundary={BOUNDARY}"),
        false => "application/octet-stream".into(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    )
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The gateway closed it cleanly (FIN).
    Closed,
    /// A reset, which can destroy an answer the client has not read yet.
    Reset,
}

/// Reads until the gateway closes the connection.
async fn read_until_closed(
    r: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r.read(&mut buf)).await {
            Err(_) => panic!("the connection was not closed within {limit:?}"),
            Ok(Ok(0)) => return (out, End::Closed),
            Ok(Err(_)) => return (out, End::Reset),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one whole response (delimited by Content-Length).
async fn read_response(r: &mut tokio::net::tcp::OwnedReadHalf, limit: Duration) -> Raw {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        if let Some(response) = parse_responses(&bytes).into_iter().next() {
            let length = response
                .header("content-length")
                .and_then(|l| l.parse().ok());
            if length == Some(response.body.len()) {
                return response;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, r.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no whole response within {limit:?}"))
            .unwrap_or(0);
        assert!(
            n > 0,
            "closed before a whole response: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    }
}

type Sent = Result<(u64, String), (u64, std::io::Error)>;

/// Sends an upload while reading the answer at the same time, as browsers do. A 413
/// must be followed by the gateway closing the connection.
async fn upload_while_reading(
    addr: SocketAddr,
    path: &str,
    parts: Vec<Part>,
    chunked: bool,
    multipart: bool,
) -> (Raw, Sent) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let head = upload_head(path, &parts, chunked, multipart);
    let writer = tokio::spawn(async move {
        if let Err(e) = w.write_all(head.as_bytes()).await {
            return (w, Err((0, e)));
        }
        let sent = send_body(&mut w, &parts, chunked).await;
        // The write half stays open: the gateway closes the connection, not the client.
        (w, sent)
    });
    let response = read_response(&mut r, Duration::from_secs(240)).await;
    if response.status == 413 {
        let (rest, end) = read_until_closed(&mut r, Duration::from_secs(10)).await;
        assert!(rest.is_empty(), "bytes after the 413");
        assert_eq!(end, End::Closed, "the 413 was followed by a reset");
    }
    let (_w, sent) = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the client could finish writing")
        .unwrap();
    (response, sent)
}

fn assert_413(r: &Raw, message: &str) {
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["message"], message, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
}

#[tokio::test]
async fn a_chunked_upload_over_150_mb_is_answered_413_that_a_client_still_sending_reads() {
    let started = Instant::now();
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |_| {}).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let parts = vec![Part::Pieces(151)];
    // The hardest client: it writes the whole 151 MB before it reads anything.
    w.write_all(upload_head("/upload", &parts, true, false).as_bytes())
        .await
        .unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(240), send_body(&mut w, &parts, true))
        .await
        .expect("the gateway kept reading until the client was done");
    let (bytes, end) = read_until_closed(&mut r, Duration::from_secs(10)).await;
    let response = parse_responses(&bytes)
        .into_iter()
        .next()
        .expect("an answer");
    assert_413(&response, "Request content length limit exceeded");
    assert!(
        sent.is_ok(),
        "the client could send its whole body: {sent:?}"
    );
    // The gateway read and dropped the rest of the body: no reset for unread data.
    assert_eq!(end, End::Closed);
    let metrics = gw.gateway.metrics().encode();
    assert!(
        metrics.contains("portico_refused_request_bodies_total{reason=\"request_size\"} 1"),
        "{metrics}"
    );
    eprintln!("151 MB chunked upload: {:?}", started.elapsed());
}

/// Socket buffers on loopback hold tens of megabytes, so a client only a little over
/// the limit finishes writing whatever the gateway does. This one sends 64 MB past an
/// 8 MB limit before reading: without the lingering close, its writes fail with a
/// reset (and many HTTP clients then never read the answer).
#[tokio::test]
async fn a_client_sending_far_past_the_limit_can_finish_and_then_read_the_413() {
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |c| c.max_request_size = 8 * MB).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let parts = vec![Part::Pieces(72)];
    w.write_all(upload_head("/upload", &parts, true, false).as_bytes())
        .await
        .unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(60), send_body(&mut w, &parts, true))
        .await
        .expect("the gateway kept reading until the client was done");
    assert!(
        sent.is_ok(),
        "the client could send its whole body: {sent:?}"
    );
    let (bytes, end) = read_until_closed(&mut r, Duration::from_secs(10)).await;
    let response = parse_responses(&bytes)
        .into_iter()
        .next()
        .expect("an answer");
    assert_413(&response, "Request content length limit exceeded");
    assert_eq!(end, End::Closed);
}

#[tokio::test]
async fn a_declared_length_over_150_mb_is_refused_before_any_backend_sees_it() {
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |_| {}).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let parts = vec![Part::Pieces(151)];
    w.write_all(upload_head("/upload", &parts, false, false).as_bytes())
        .await
        .unwrap();
    // A little of the body, then the client waits for the answer.
    w.write_all(&piece()).await.unwrap();
    let (bytes, end) = read_until_closed(&mut r, Duration::from_secs(10)).await;
    assert_eq!(end, End::Closed);
    let response = parse_responses(&bytes)
        .into_iter()
        .next()
        .expect("an answer");
    assert_413(&response, "Request content length limit exceeded");
    assert_eq!(
        backend.heads.load(Ordering::SeqCst),
        0,
        "the backend saw the request"
    );
}

#[tokio::test]
async fn a_multipart_file_over_100_mb_is_413_and_the_backend_request_aborted() {
    let started = Instant::now();
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |_| {}).await;
    let (response, sent) =
        upload_while_reading(gw.addr, "/upload", multipart(&[101]), false, true).await;
    assert_413(&response, "File size limit exceeded in multipart request");
    assert!(
        sent.is_ok(),
        "the client could send its whole body: {sent:?}"
    );
    // The backend got the start of the request, and never its end.
    assert_eq!(backend.heads.load(Ordering::SeqCst), 1);
    assert_eq!(backend.uploads.load(Ordering::SeqCst), 0);
    let metrics = gw.gateway.metrics().encode();
    assert!(
        metrics.contains("portico_refused_request_bodies_total{reason=\"file_size\"} 1"),
        "{metrics}"
    );
    eprintln!("101 MB multipart file: {:?}", started.elapsed());
}

#[tokio::test]
async fn two_60_mb_files_reach_the_backend_byte_for_byte() {
    let started = Instant::now();
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |_| {}).await;
    let parts = multipart(&[60, 60]);
    let total = body_len(&parts);
    let (response, sent) = upload_while_reading(gw.addr, "/upload", parts, false, true).await;
    assert_eq!(response.status, 200, "{response:?}");
    let (sent, hash) = sent.unwrap();
    assert_eq!(sent, total);
    assert!(total > 120 * MB);
    assert_eq!(response.json()["bytes"], total, "{response:?}");
    assert_eq!(response.json()["sha256"], hash.as_str());
    eprintln!("two 60 MB files: {:?}", started.elapsed());
}

#[tokio::test]
async fn two_80_mb_files_pass_the_request_limit_while_streaming() {
    let started = Instant::now();
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |_| {}).await;
    // Chunked, so that only counting can find the total over 150 MB.
    let (response, _) =
        upload_while_reading(gw.addr, "/upload", multipart(&[80, 80]), true, true).await;
    assert_413(&response, "Request content length limit exceeded");
    eprintln!("two 80 MB files: {:?}", started.elapsed());
}

#[tokio::test]
async fn in_process_services_get_the_same_limits() {
    use portico_store::{Api, Auth, Origin, Route};
    let service = tower::service_fn(|req: Request<Body>| async move {
        // A service that reads the whole body and reports a failure its own way.
        let status = match req.into_body().collect().await {
            Ok(_) => 200,
            Err(_) => 400,
        };
        Ok::<_, Infallible>(
            Response::builder()
                .status(status)
                .body(boxed(Full::new(Bytes::new())))
                .unwrap(),
        )
    });
    let mut services = portico_gateway::Services::new();
    services.insert("sink".into(), portico_gateway::from_tower(service));
    let registry = Registry {
        tenants: vec![tenant("abc")],
        webapps: vec![],
        apis: vec![Api {
            name: "sink".into(),
            provider: None,
            version: 1,
            backend: "internal:sink".into(),
            routes: vec![Route {
                pattern: "/**".into(),
                methods: vec!["POST".into()],
            }],
            tenants: vec!["abc".into()],
            auth: Auth::None,
            scopes: Vec::new(),
            origin: Origin::File,
        }],
    };
    let gw = start_with(&registry, services, |c| c.max_request_size = 3 * MB).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let head = "POST /api/sink/v1/in HTTP/1.1\r\nHost: gateway.eu1.portico.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    w.write_all(head.as_bytes()).await.unwrap();
    let _ = send_body(&mut w, &[Part::Pieces(4)], true).await;
    let (bytes, _) = read_until_closed(&mut r, Duration::from_secs(20)).await;
    let response = parse_responses(&bytes)
        .into_iter()
        .next()
        .expect("an answer");
    assert_413(&response, "Request content length limit exceeded");
}

/// Sends a GET on `stream` and reads its response (delimited by Content-Length).
async fn get_on(stream: &mut TcpStream, path: &str) -> Raw {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before a whole response");
        bytes.extend_from_slice(&buf[..n]);
        if let Some(r) = parse_responses(&bytes).into_iter().next() {
            if r.header("content-length").and_then(|l| l.parse().ok()) == Some(r.body.len()) {
                return r;
            }
        }
    }
}

/// Waits for the gateway to close `stream`; how long after `since` it did.
async fn time_to_close(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Err(_) => panic!("not closed within 10 s"),
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Asserts that the gateway closes `stream` after about the 1 s idle timeout the tests
/// set: not before it, and well before the 10 s `time_to_close` allows. `since` was taken
/// before the last bytes moved, so a slow test cannot make the gateway look early. (The
/// gateway closes between the timeout and an eighth more after the last byte; the few
/// milliseconds spared here are for the timer's resolution.)
async fn closes_after_the_idle_timeout(stream: &mut TcpStream, since: Instant) {
    let idle = time_to_close(stream, since).await;
    assert!(
        idle >= Duration::from_millis(990) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |c| {
        c.idle_timeout = Duration::from_secs(1)
    })
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    // Waiting 2 s for a response head is not idleness; then two requests 0.6 s apart
    // keep the connection open past the timeout.
    assert_eq!(get_on(&mut stream, "/late").await.body, "late");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get_on(&mut stream, "/x").await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let last = Instant::now();
    assert_eq!(get_on(&mut stream, "/x").await.status, 200);
    closes_after_the_idle_timeout(&mut stream, last).await;
}

#[tokio::test]
async fn a_stalled_response_body_is_closed_after_the_idle_timeout() {
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |c| {
        c.idle_timeout = Duration::from_secs(1)
    })
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let last = Instant::now();
    stream
        .write_all(format!("GET /stall HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&bytes).contains("partial") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the start of the body")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&buf[..n]);
    }
    closes_after_the_idle_timeout(&mut stream, last).await;
}

#[tokio::test]
async fn an_idle_websocket_is_closed_after_the_idle_timeout() {
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |c| {
        c.idle_timeout = Duration::from_secs(1)
    })
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("the 101 in time")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // Traffic, echoed by the backend, keeps the upgraded connection open past 1 s.
    let mut last = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = Instant::now();
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo))
            .await
            .expect("the echo in time")
            .unwrap();
        assert_eq!(&echo, b"ping");
    }
    closes_after_the_idle_timeout(&mut stream, last).await;
}

#[tokio::test]
async fn a_client_dribbling_its_head_is_cut_off_with_408() {
    let backend = recorder().await;
    let gw = start(&registry(backend.addr), |c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let head = format!(
        "GET /x HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: {}\r\n\r\n",
        "y".repeat(100)
    );
    let started = Instant::now();
    tokio::spawn(async move {
        // One byte every 100 ms: the whole head would take about 17 s.
        for b in head.bytes() {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (bytes, _) = read_until_closed(&mut r, Duration::from_secs(10)).await;
    let cut = started.elapsed();
    let response = parse_responses(&bytes)
        .into_iter()
        .next()
        .expect("an answer");
    assert_eq!(response.status, 408, "{response:?}");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(5),
        "{cut:?}"
    );
    assert_eq!(backend.heads.load(Ordering::SeqCst), 0);
}
