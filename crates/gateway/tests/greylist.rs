//! Greylisting of slow backends end to end on loopback (GW-14), with short timings: an
//! answer slower than 200 ms is slow, the instance is busy above half of its connections
//! (held open by the test), and a greylisting lasts 3 s.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portico_gateway::body::{boxed, Body};
use portico_gateway::config::{GreylistConfig, GreylistMode};
use portico_store::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SLOW_HOST: &str = "abc-slowapp.eu1.portico.localhost";
const FAST_HOST: &str = "abc-fastapp.eu1.portico.localhost";
const GATEWAY_HOST: &str = "gateway.eu1.portico.localhost";
const MAX_CONNECTIONS: usize = 6;
/// Connections held open to make the instance busy: with the request's own, 4 of 6.
const BUSY: usize = 3;
const GREYLIST_DURATION: Duration = Duration::from_secs(3);

/// A backend that answers `/delay/{ms}` after that many milliseconds.
async fn delay_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(answer_after_delay);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn answer_after_delay(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let ms: u64 = req
        .uri()
        .path()
        .strip_prefix("/delay/")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(Response::new(boxed(Full::new(Bytes::from_static(b"done")))))
}

async fn gateway(mode: GreylistMode) -> TestGateway {
    let (slow, fast) = (delay_backend().await, delay_backend().await);
    let registry = Registry {
        tenants: vec![tenant("abc")],
        webapps: vec![
            webapp("slowapp", None, slow, &["abc"]),
            webapp("fastapp", None, fast, &["abc"]),
        ],
        apis: Vec::new(),
    };
    start(&registry, |c| {
        c.max_connections = MAX_CONNECTIONS;
        c.greylist = GreylistConfig {
            mode,
            slow_response: Duration::from_millis(200),
            duration: GREYLIST_DURATION,
            load_threshold: 0.5,
            admit_below: 0.5,
        };
    })
    .await
}

/// Keep-alive connections, each with one request answered, so that the gateway surely
/// counts them; they stay open until dropped.
async fn hold_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {GATEWAY_HOST}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        tokio::time::timeout(Duration::from_secs(5), async {
            while !seen.ends_with(b"ok\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the gateway closed a held connection");
                seen.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("the health check answers within 5 s");
        held.push(stream);
    }
    held
}

/// The value of one metric line, e.g. `portico_greylisted_endpoints`; 0 when absent.
fn metric(gw: &TestGateway, name: &str) -> f64 {
    let text = gw.gateway.metrics().encode();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

const GREYLISTED: &str = "portico_greylisted_endpoints";
const GREYLISTINGS: &str = "portico_greylist_changes_total{change=\"greylisted\"}";
const RELEASES: &str = "portico_greylist_changes_total{change=\"released\"}";
const REFUSED: &str = "portico_greylist_turned_away_total{outcome=\"refused\"}";
const FORWARDED_ANYWAY: &str = "portico_greylist_turned_away_total{outcome=\"forwarded\"}";

/// Retries a request until it is answered 200, for at most 5 s (connections the test
/// closed take a moment to leave the gateway's count).
async fn until_admitted(gw: &TestGateway, host: &str, target: &str) -> Raw {
    let mut last = None;
    for _ in 0..50 {
        let r = get(gw.addr, host, target, &[]).await;
        if r.status == 200 {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never admitted: {last:?}");
}

#[tokio::test]
async fn enforce_refuses_a_slow_endpoint_while_busy_admits_it_when_not_and_releases_it() {
    let gw = gateway(GreylistMode::Enforce).await;

    // Slow, but the instance is idle: nothing happens.
    assert_eq!(get(gw.addr, SLOW_HOST, "/delay/400", &[]).await.status, 200);
    assert_eq!(metric(&gw, GREYLISTED), 0.0);

    // Busy: the slow endpoint is greylisted and refused; the fast one is served.
    let held = hold_connections(gw.addr, BUSY).await;
    let refused = get(gw.addr, SLOW_HOST, "/delay/0", &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["message"], "Backend service is too slow");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    for _ in 0..3 {
        assert_eq!(get(gw.addr, FAST_HOST, "/delay/0", &[]).await.status, 200);
    }
    assert_eq!(metric(&gw, GREYLISTED), 1.0, "only the slow endpoint");
    assert_eq!(metric(&gw, GREYLISTINGS), 1.0);
    assert_eq!(metric(&gw, REFUSED), 1.0);

    // Below `admit_below`, the greylisted endpoint gets its requests.
    drop(held);
    let admitted = until_admitted(&gw, SLOW_HOST, "/delay/0").await;
    assert_eq!(admitted.body, "done");
    assert_eq!(
        metric(&gw, GREYLISTED),
        1.0,
        "still greylisted, but admitted"
    );

    // Released after the duration, with no request needed to notice.
    let released = tokio::time::timeout(GREYLIST_DURATION * 2, async {
        while metric(&gw, RELEASES) < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "released within twice the duration");
    assert_eq!(metric(&gw, GREYLISTED), 0.0);

    // Its last answer was fast: busy again, it is served.
    let _held = hold_connections(gw.addr, BUSY).await;
    assert_eq!(get(gw.addr, SLOW_HOST, "/delay/0", &[]).await.status, 200);
    assert_eq!(metric(&gw, GREYLISTINGS), 1.0);
}

#[tokio::test]
async fn report_forwards_requests_to_a_greylisted_endpoint_and_counts_them() {
    let gw = gateway(GreylistMode::Report).await;
    assert_eq!(get(gw.addr, SLOW_HOST, "/delay/400", &[]).await.status, 200);
    let _held = hold_connections(gw.addr, BUSY).await;
    for _ in 0..2 {
        let r = get(gw.addr, SLOW_HOST, "/delay/0", &[]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "done"));
    }
    assert_eq!(get(gw.addr, FAST_HOST, "/delay/0", &[]).await.status, 200);
    assert_eq!(metric(&gw, GREYLISTED), 1.0);
    assert_eq!(metric(&gw, GREYLISTINGS), 1.0);
    assert_eq!(metric(&gw, FORWARDED_ANYWAY), 2.0);
    assert_eq!(metric(&gw, REFUSED), 0.0);
}

#[tokio::test]
async fn a_request_still_waiting_greylists_its_endpoint_before_it_is_answered() {
    let gw = gateway(GreylistMode::Enforce).await;
    let _held = hold_connections(gw.addr, BUSY).await;
    let addr = gw.addr;
    let waiting = tokio::spawn(async move { get(addr, SLOW_HOST, "/delay/4000", &[]).await });
    let greylisted = tokio::time::timeout(Duration::from_secs(3), async {
        while metric(&gw, GREYLISTED) < 1.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(greylisted.is_ok(), "greylisted while its request waits");
    assert!(!waiting.is_finished(), "the slow request is still waiting");
    let refused = get(gw.addr, SLOW_HOST, "/delay/0", &[]).await;
    assert_eq!(refused.status, 503);
    assert_eq!(
        waiting.await.unwrap().status,
        200,
        "the waiting request completes"
    );
}

#[tokio::test]
async fn a_fast_endpoint_is_never_greylisted_however_busy() {
    let gw = gateway(GreylistMode::Enforce).await;
    let _held = hold_connections(gw.addr, BUSY).await;
    for _ in 0..5 {
        assert_eq!(get(gw.addr, FAST_HOST, "/delay/10", &[]).await.status, 200);
    }
    assert_eq!(metric(&gw, GREYLISTED), 0.0);
    assert_eq!(metric(&gw, GREYLISTINGS), 0.0);
}
