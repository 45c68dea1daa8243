//! The gateway's keep-alive connections to plain-HTTP backends: reused across client
//! connections, and never reused once the backend has closed them.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use portico_store::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "t1-app.eu1.portico.localhost";

/// A backend that answers `ok` to every request head and counts the connections it
/// accepted. With `close_after_answer` it closes each connection right after its first
/// answer, without saying so in the response (as a backend's idle timeout does).
async fn counting_backend(close_after_answer: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer_heads(stream, close_after_answer));
        }
    });
    (addr, accepted)
}

async fn answer_heads(mut stream: TcpStream, close_after_answer: bool) {
    let mut buffered = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded: at most 100 requests per connection, each head within 10 s.
    for _ in 0..100 {
        let end = loop {
            if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buffered.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head: Vec<u8> = buffered.drain(..end).collect();
        let answer: &[u8] = if head.starts_with(b"HEAD ") {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        if stream.write_all(answer).await.is_err() || close_after_answer {
            return;
        }
    }
}

fn registry(backend: SocketAddr) -> Registry {
    Registry {
        tenants: vec![tenant("t1")],
        webapps: vec![webapp("app", None, backend, &["t1"])],
        ..Registry::default()
    }
}

async fn head(addr: SocketAddr) -> Raw {
    let request = format!("HEAD / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let bytes = raw_bytes(addr, request.as_bytes()).await;
    let text = String::from_utf8_lossy(&bytes).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw {
        status,
        head: text,
        body: String::new(),
    }
}

#[tokio::test]
async fn requests_from_different_clients_share_backend_connections() {
    // On the shared runtime one connection serves every client; on the per-core runtimes
    // each core keeps its own, so that a backend socket wakes the thread of its request.
    for per_core in [false, true] {
        let (backend, accepted) = counting_backend(false).await;
        let gw = start(&registry(backend), |c| c.per_core_runtimes = per_core).await;
        for i in 0..6 {
            // Each on a connection of its own; HEAD answers have no body to read.
            let r = if i % 3 == 2 {
                head(gw.addr).await
            } else {
                get(gw.addr, HOST, "/", &[]).await
            };
            assert_eq!(r.status, 200, "request {i}: {r:?}");
            if i % 3 != 2 {
                assert_eq!(r.body, "ok");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let opened = accepted.load(Ordering::SeqCst);
        if per_core {
            let cores = portico_gateway::cores::count();
            assert!((1..=cores).contains(&opened), "{opened} for {cores} cores");
        } else {
            assert_eq!(opened, 1);
        }
    }
}

#[tokio::test]
async fn connections_the_backend_closed_are_not_reused() {
    let (backend, accepted) = counting_backend(true).await;
    let gw = start(&registry(backend), |_| {}).await;
    for i in 0..5 {
        let r = get(gw.addr, HOST, "/", &[]).await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.body, "ok");
        // Time for the backend's close to reach the gateway.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}
