//! Test support: a gateway on a loopback port, echo backends, and a raw HTTP/1.1 client
//! that sends exactly the bytes a test writes.
#![allow(dead_code)]

pub mod auth_double;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use portico_gateway::body::{boxed, Body};
use portico_gateway::{Gateway, GatewayConfig, Services};
use portico_store::{Api, Auth, Origin, Registry, Route, Tenant, WebApp};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const STREAM_CHUNKS: usize = 100;
pub const STREAM_CHUNK: usize = 16 * 1024;

/// A backend that answers with what it received, as JSON, and names itself in `x-backend`.
/// `/cache-control` sets `Cache-Control: max-age=60`, `/own-policy` a report-only CSP;
/// `/slow` answers after 3 s; `/stream` streams `STREAM_CHUNKS` chunks 20 ms apart;
/// `/count` answers with the number of body bytes it read.
pub async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| answer(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn answer(name: &'static str, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let response = match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(boxed(Full::new(Bytes::from_static(b"slow"))))
        }
        "/stream" => {
            let chunks = stream::unfold(0usize, |i| async move {
                if i == STREAM_CHUNKS {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; STREAM_CHUNK]))),
                    i + 1,
                ))
            });
            Response::new(boxed(StreamBody::new(chunks)))
        }
        "/cache-control" => {
            let mut r = Response::new(boxed(Full::new(Bytes::from_static(b"cached"))));
            r.headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            r
        }
        "/own-policy" => {
            let mut r = Response::new(boxed(Full::new(Bytes::from_static(b"policy"))));
            r.headers_mut().insert(
                "content-security-policy-report-only",
                "default-src 'none'".parse().unwrap(),
            );
            r
        }
        "/count" => {
            let bytes = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            Response::new(boxed(Full::new(Bytes::from(bytes.to_string()))))
        }
        _ => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let seen = serde_json::json!({
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "headers": headers,
            });
            Response::new(boxed(Full::new(Bytes::from(seen.to_string()))))
        }
    };
    let mut response = response;
    response
        .headers_mut()
        .insert("x-backend", name.parse().unwrap());
    Ok(response)
}

pub fn tenant(name: &str) -> Tenant {
    Tenant {
        name: name.into(),
        origin: Origin::File,
    }
}

pub fn webapp(name: &str, provider: Option<&str>, backend: SocketAddr, tenants: &[&str]) -> WebApp {
    WebApp {
        name: name.into(),
        provider: provider.map(str::to_string),
        backend: format!("http://{backend}"),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        cache_control: None,
        websockets: Vec::new(),
        auth: Auth::None,
        scopes: Vec::new(),
        origin: Origin::File,
    }
}

pub fn api(
    name: &str,
    provider: Option<&str>,
    version: u32,
    backend: SocketAddr,
    routes: &[(&str, &[&str])],
    tenants: &[&str],
) -> Api {
    Api {
        name: name.into(),
        provider: provider.map(str::to_string),
        version,
        backend: format!("http://{backend}"),
        routes: routes
            .iter()
            .map(|(p, m)| Route {
                pattern: p.to_string(),
                methods: m.iter().map(|m| m.to_string()).collect(),
            })
            .collect(),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        auth: Auth::None,
        scopes: Vec::new(),
        origin: Origin::File,
    }
}

/// The registry of the foundation's acceptance: tenant `abc` subscribed to web app
/// `assetmanager-xyz` (backend A) and API `iot-xyz` v3 (backend B); tenant `other` exists.
pub fn example_registry(a: SocketAddr, b: SocketAddr) -> Registry {
    Registry {
        tenants: vec![tenant("abc"), tenant("other")],
        webapps: vec![webapp("assetmanager", Some("xyz"), a, &["abc"])],
        apis: vec![api(
            "iot",
            Some("xyz"),
            3,
            b,
            &[("/assets/**", &["GET", "POST"])],
            &["abc"],
        )],
    }
}

pub struct TestGateway {
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(registry: &Registry, tweak: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
    start_with(registry, Services::new(), tweak).await
}

pub async fn start_with(
    registry: &Registry,
    services: Services,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> TestGateway {
    let mut config = GatewayConfig::new(vec!["portico.localhost".into()], vec!["eu1".into()]);
    tweak(&mut config);
    let gateway = Gateway::new(config, services);
    assert!(gateway.install(registry).is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = gateway.clone();
    let token = shutdown.clone();
    tokio::spawn(async move { serving.serve(listener, None, token).await });
    TestGateway {
        gateway,
        addr,
        shutdown,
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `request` bytes on a new connection and reads until the server closes it (the
/// request should say `Connection: close`). Bounded by 10 s.
pub async fn raw_bytes(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the gateway closed the connection in time")
        .unwrap_or(0);
    out
}

/// Splits a stream of responses (as read by `raw_bytes`) into responses; bodies are
/// delimited by Content-Length (the tests' backends and the gateway's errors use it).
pub fn parse_responses(bytes: &[u8]) -> Vec<Raw> {
    let text = String::from_utf8_lossy(bytes).to_string();
    let mut rest = text.as_str();
    let mut out = Vec::new();
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = rest[..end].to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(rest.len() - end - 4);
        let body_end = (end + 4 + length).min(rest.len());
        out.push(Raw {
            status,
            head,
            body: rest[end + 4..body_end].to_string(),
        });
        rest = &rest[body_end..];
    }
    out
}

/// One request with `Connection: close`; `extra` are more header lines.
pub async fn get(addr: SocketAddr, host: &str, target: &str, extra: &[&str]) -> Raw {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let bytes = raw_bytes(addr, request.as_bytes()).await;
    parse_responses(&bytes)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response: {}", String::from_utf8_lossy(&bytes)))
}

/// [`start_with`] for a gateway that authenticates callers with `authenticator`.
pub async fn start_authenticated(
    registry: &Registry,
    services: Services,
    authenticator: Option<std::sync::Arc<dyn portico_gateway::auth::Authenticator>>,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> TestGateway {
    let mut config = GatewayConfig::new(vec!["portico.localhost".into()], vec!["eu1".into()]);
    tweak(&mut config);
    let gateway = Gateway::with_authenticator(config, services, authenticator);
    assert!(gateway.install(registry).is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = gateway.clone();
    let token = shutdown.clone();
    tokio::spawn(async move { serving.serve(listener, None, token).await });
    TestGateway {
        gateway,
        addr,
        shutdown,
    }
}

/// One request of any method with `Connection: close`; `extra` are more header lines,
/// `body` is sent with its Content-Length.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    extra: &[&str],
    body: &str,
) -> Raw {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    let bytes = raw_bytes(addr, request.as_bytes()).await;
    parse_responses(&bytes)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response: {}", String::from_utf8_lossy(&bytes)))
}
