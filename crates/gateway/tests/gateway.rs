//! The gateway end to end on loopback: routing by host and path to real backends,
//! errors in their formats, target checks, head guard, timeouts, and registry swaps.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;
use support::*;

const WEBAPP_HOST: &str = "abc-assetmanager-xyz.eu1.portico.localhost";
const GATEWAY_HOST: &str = "gateway.eu1.portico.localhost";

#[tokio::test]
async fn web_app_requests_reach_their_backend_with_path_and_query_intact() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let r = get(
        gw.addr,
        WEBAPP_HOST,
        "/some/page.html?x=1&y=%20",
        &["X-Forwarded-For: 10.1.1.1"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-backend"), Some("A"));
    let seen = r.json();
    assert_eq!(seen["uri"], "/some/page.html?x=1&y=%20");
    let headers = &seen["headers"];
    assert_eq!(headers["host"], a.to_string());
    assert_eq!(headers["x-forwarded-host"], WEBAPP_HOST);
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{WEBAPP_HOST}\"")
    );
    assert!(
        headers.get("connection").is_none(),
        "hop-by-hop header forwarded: {headers}"
    );
    // The same request id on both sides.
    assert_eq!(headers["x-request-id"], r.header("x-request-id").unwrap());
}

#[tokio::test]
async fn api_calls_reach_the_api_backend_from_web_app_and_gateway_hosts() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    for host in [WEBAPP_HOST, GATEWAY_HOST] {
        let r = get(
            gw.addr,
            host,
            "/api/iot-xyz/v3/assets/1?x=1",
            &["X-Request-Id: abc-123"],
        )
        .await;
        assert_eq!(r.status, 200, "{host}: {r:?}");
        assert_eq!(r.header("x-backend"), Some("B"));
        assert_eq!(r.json()["uri"], "/assets/1?x=1");
        assert_eq!(r.json()["headers"]["x-request-id"], "abc-123");
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        // An id that is too long, or not printable ASCII, is replaced by a fresh one.
        let too_long = format!("X-Request-Id: {}", "a".repeat(129));
        for id in [too_long.as_str(), "X-Request-Id: two words"] {
            let r = get(gw.addr, host, "/api/iot-xyz/v3/assets/1", &[id]).await;
            assert_eq!(r.status, 200, "{host}: {r:?}");
            let fresh = r.header("x-request-id").unwrap().to_string();
            assert_eq!(fresh.len(), 32, "{id}: {fresh}");
            assert_eq!(r.json()["headers"]["x-request-id"], fresh.as_str());
        }
    }
    // The UI mashup form, from web-app hosts only.
    let r = get(gw.addr, WEBAPP_HOST, "/services/iot-xyz/v3/assets/2", &[]).await;
    assert_eq!(r.json()["uri"], "/assets/2");
    assert_eq!(
        get(gw.addr, GATEWAY_HOST, "/services/iot-xyz/v3/assets/2", &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn unknown_versions_and_unsubscribed_tenants_are_gateway_errors_in_json_xml_or_406() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let cases = [
        (WEBAPP_HOST, "/api/iot-xyz/v4/assets/1"),
        (GATEWAY_HOST, "/api/iot-xyz/v4/assets/1"),
        ("other-assetmanager-xyz.eu1.portico.localhost", "/"),
        (
            "other-assetmanager-xyz.eu1.portico.localhost",
            "/api/iot-xyz/v3/assets/1",
        ),
        ("nobody-assetmanager-xyz.eu1.portico.localhost", "/"),
        ("abc-unknown.eu1.portico.localhost", "/"),
        ("abc-assetmanager-xyz.eu9.portico.localhost", "/"),
        ("example.org", "/"),
    ];
    for (host, target) in cases {
        let json = get(gw.addr, host, target, &[]).await;
        assert_eq!(json.status, 404, "{host}{target}: {json:?}");
        assert_eq!(json.header("content-type"), Some("application/json"));
        let body = json.json();
        assert_eq!(body["status"], 404);
        assert_eq!(body["error"], "Not Found");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body["requestId"], json.header("x-request-id").unwrap());
        assert!(
            json.body
                .starts_with("{\"status\":404,\"error\":\"Not Found\",\"message\":"),
            "{}",
            json.body
        );

        let xml = get(gw.addr, host, target, &["Accept: application/xml"]).await;
        assert_eq!(xml.status, 404);
        assert!(xml
            .header("content-type")
            .unwrap()
            .starts_with("application/xml"));
        assert!(
            xml.body
                .starts_with("<error><status>404</status><error>Not Found</error><message>"),
            "{}",
            xml.body
        );
        assert!(xml.body.ends_with("</requestId></error>"));

        let plain = get(gw.addr, host, target, &["Accept: text/plain"]).await;
        assert_eq!(plain.status, 406, "{plain:?}");
    }
}

#[tokio::test]
async fn raw_brackets_in_a_query_are_refused_and_encoded_ones_forwarded_byte_for_byte() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let r = get(gw.addr, WEBAPP_HOST, "/getDataByIds?idList=[1,2]", &[]).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["status"], 400);
    assert!(r.json()["message"].as_str().unwrap().contains('['));
    let r = get(gw.addr, WEBAPP_HOST, "/getDataByIds?idList=%5B1,2%5D", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/getDataByIds?idList=%5B1,2%5D");
}

/// Every row of the RFC 3986 vectors, through a real connection: `ok` rows reach the
/// backend with the target unchanged, `400` rows get a gateway error.
#[tokio::test]
async fn rfc3986_vectors_end_to_end() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let text = include_str!("../testdata/rfc3986-targets.tsv");
    let mut rows = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (target, expected) = line.split_once('\t').unwrap();
        rows += 1;
        let r = get(gw.addr, WEBAPP_HOST, target, &[]).await;
        match expected {
            "ok" => {
                assert_eq!(r.status, 200, "{target}: {r:?}");
                assert_eq!(r.json()["uri"], target);
            }
            _ => {
                assert_eq!(r.status, 400, "{target}: {r:?}");
                assert_eq!(r.json()["status"], 400, "{target}");
            }
        }
    }
    assert_eq!(rows, 10);
}

#[tokio::test]
async fn a_method_no_route_allows_is_405_with_allow() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let r = support::parse_responses(
        &raw_bytes(
            gw.addr,
            format!("DELETE /api/iot-xyz/v3/assets/1 HTTP/1.1\r\nHost: {GATEWAY_HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await,
    )
    .remove(0);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = get(gw.addr, GATEWAY_HOST, "/api/iot-xyz/v3/fleets", &[]).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn malformed_and_oversized_heads_get_a_gateway_error_body() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;

    let bad = raw_bytes(gw.addr, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").await;
    let r = &parse_responses(&bad)[0];
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["status"], 400);
    assert!(r.json()["message"].as_str().unwrap().contains("Malformed"));

    let big = format!(
        "GET / HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = &parse_responses(&raw_bytes(gw.addr, big.as_bytes()).await)[0];
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.json()["status"], 431);

    let space = format!("GET /path with space HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\n\r\n");
    let r = &parse_responses(&raw_bytes(gw.addr, space.as_bytes()).await)[0];
    assert_eq!(r.status, 400);

    let smuggle = format!(
        "POST / HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let r = &parse_responses(&raw_bytes(gw.addr, smuggle.as_bytes()).await)[0];
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Content-Length"));
}

#[tokio::test]
async fn a_bad_request_after_good_ones_on_one_connection_leaves_their_answers_whole() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let pipeline = format!(
        "POST /count HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n\
         POST /count HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nContent-Length: 4\r\n\r\nabcd\
         GET / HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nBroken\r\n\r\n"
    );
    let responses = parse_responses(&raw_bytes(gw.addr, pipeline.as_bytes()).await);
    assert_eq!(responses.len(), 3, "{responses:?}");
    assert_eq!(
        (responses[0].status, responses[0].body.as_str()),
        (200, "11")
    );
    assert_eq!(
        (responses[1].status, responses[1].body.as_str()),
        (200, "4")
    );
    assert_eq!(responses[2].status, 400);
}

#[tokio::test]
async fn unreachable_backends_are_502_and_slow_ones_504() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow = backend("S").await;
    let registry = example_registry(closed, slow);
    let gw = start(&registry, |c| {
        c.response_timeout = Duration::from_millis(500)
    })
    .await;
    let r = get(gw.addr, WEBAPP_HOST, "/", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["status"], 502);
    let r = get(gw.addr, GATEWAY_HOST, "/api/iot-xyz/v3/assets/../slow", &[]).await;
    assert_eq!(r.status, 400, "dot segments never reach a backend");
    let mut registry = registry;
    registry.apis[0].routes[0].pattern = "/**".into();
    assert!(gw.gateway.install(&registry).is_empty());
    let r = get(gw.addr, GATEWAY_HOST, "/api/iot-xyz/v3/slow", &[]).await;
    assert_eq!(r.status, 504, "{r:?}");
}

#[tokio::test]
async fn core_paths_come_before_registrations() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let r = get(gw.addr, GATEWAY_HOST, "/healthz", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    for path in [
        "/login",
        "/logout",
        "/.well-known/jwks.json",
        "/oauth/authorize",
        "/uaa/oauth/token",
    ] {
        let r = get(gw.addr, WEBAPP_HOST, path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.json()["message"].as_str().unwrap().contains("reserved"),
            "{path}"
        );
        assert_ne!(
            r.header("x-backend"),
            Some("A"),
            "{path} reached the backend"
        );
    }
    // Only whole segments are reserved.
    assert_eq!(
        get(gw.addr, WEBAPP_HOST, "/loginpage", &[])
            .await
            .header("x-backend"),
        Some("A")
    );
}

/// A registry swap re-routes new requests at once while a download already under way
/// on the old route finishes whole.
#[tokio::test]
async fn a_registry_swap_leaves_a_running_download_unharmed() {
    let (a, b, c) = (backend("A").await, backend("B").await, backend("C").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let addr = gw.addr;
    let download = tokio::spawn(async move {
        let request =
            format!("GET /stream HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nConnection: close\r\n\r\n");
        raw_bytes(addr, request.as_bytes()).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut registry = example_registry(a, b);
    registry.webapps[0].backend = format!("http://{c}");
    assert!(gw.gateway.install(&registry).is_empty());
    assert_eq!(
        get(gw.addr, WEBAPP_HOST, "/", &[])
            .await
            .header("x-backend"),
        Some("C")
    );
    assert!(
        !download.is_finished(),
        "the download should still be running"
    );

    let bytes = download.await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("x-backend: A"),
        "the download came from the old backend"
    );
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let payload = bytes[head_end..].iter().filter(|&&b| b == b'x').count();
    assert_eq!(
        payload,
        STREAM_CHUNKS * STREAM_CHUNK,
        "every byte of the download arrived"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_class_and_status() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    get(gw.addr, WEBAPP_HOST, "/", &[]).await;
    get(gw.addr, GATEWAY_HOST, "/api/iot-xyz/v4/x", &[]).await;
    let text = gw.gateway.metrics().encode();
    assert!(
        text.contains("portico_requests_total{class=\"webapp\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portico_requests_total{class=\"unrouted\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portico_registry_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portico_request_duration_seconds_bucket"),
        "{text}"
    );
}

/// Bodies larger than one read stream through the head guard in both framings.
#[tokio::test]
async fn large_request_bodies_stream_through_with_either_framing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    const SIZE: usize = 5_000_000;
    let chunk = vec![b'u'; 100_000];

    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head =
        format!("POST /count HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nContent-Length: {SIZE}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..SIZE / chunk.len() {
        stream.write_all(&chunk).await.unwrap();
    }
    // A chunked upload on the same connection, then a plain request: framing must hold.
    let head = format!(
        "POST /count HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..SIZE / chunk.len() {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let last = format!("GET /count HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nConnection: close\r\n\r\n");
    stream.write_all(last.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let responses = parse_responses(&out);
    let bodies: Vec<&str> = responses.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, ["5000000", "5000000", "0"], "{responses:?}");
}

/// A refused WebSocket upgrade leaves the connection in HTTP/1, and the requests after it
/// are checked like the first: no way around the head guard.
#[tokio::test]
async fn requests_after_a_refused_upgrade_are_still_guarded() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let pipeline = format!(
        "GET /not-a-socket HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
         GET /next HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\n\r\n\
         POST /count HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let responses = parse_responses(&raw_bytes(gw.addr, pipeline.as_bytes()).await);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    // The ambiguous third request is refused: it never reaches the backend. (After a
    // refused upgrade the HTTP library hands the connection over instead of shutting it
    // down, so the refusal is a closed connection rather than an error body.)
    assert_eq!(statuses[..2], [400, 200], "{responses:?}");
    assert!(
        responses.iter().skip(2).all(|r| r.status == 400),
        "{responses:?}"
    );
    assert!(
        !responses.iter().any(|r| r.body == "5" || r.body == "0"),
        "the smuggled request reached the backend"
    );
}

/// Upgrades to anything but WebSocket (an HTTP/2 attempt, say) are ignored and the
/// request is served as HTTP/1.1.
#[tokio::test]
async fn an_h2c_upgrade_request_is_served_as_http1() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let extra = [
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
    ];
    let r = get(gw.addr, WEBAPP_HOST, "/page", &extra).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["headers"].get("upgrade").is_none());
    let r = get(gw.addr, GATEWAY_HOST, "/api/iot-xyz/v3/assets/1", &extra).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn api_calls_from_a_web_app_host_need_that_web_app_and_its_subscription() {
    let (a, b) = (backend("A").await, backend("B").await);
    let mut registry = example_registry(a, b);
    registry.apis[0].tenants.push("other".into());
    let gw = start(&registry, |_| {}).await;
    for host in [
        "abc-nosuchapp.eu1.portico.localhost",
        "other-assetmanager-xyz.eu1.portico.localhost",
    ] {
        let r = get(gw.addr, host, "/api/iot-xyz/v3/assets/1", &[]).await;
        assert_eq!(r.status, 404, "{host}: {r:?}");
        assert_ne!(r.header("x-backend"), Some("B"));
    }
}

#[tokio::test]
async fn percent_encoded_core_paths_are_still_core_paths() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    for path in ["/%6Cogin", "/%2Ewell-known/jwks.json", "/%75aa/oauth/token"] {
        let r = get(gw.addr, WEBAPP_HOST, path, &[]).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert_ne!(
            r.header("x-backend"),
            Some("A"),
            "{path} reached the backend"
        );
    }
    let r = get(gw.addr, WEBAPP_HOST, "/%61pi/iot-xyz/v3/assets/1", &[]).await;
    assert_ne!(
        r.header("x-backend"),
        Some("A"),
        "an encoded /api is no web-app path"
    );
}

#[tokio::test]
async fn connect_is_refused_and_options_asterisk_answered() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let connect = format!(
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nConnection: close\r\n\r\n"
    );
    let r = &parse_responses(&raw_bytes(gw.addr, connect.as_bytes()).await)[0];
    assert_eq!(r.status, 405, "{r:?}");
    let options = format!("OPTIONS * HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\nConnection: close\r\n\r\n");
    let r = &parse_responses(&raw_bytes(gw.addr, options.as_bytes()).await)[0];
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("allow").is_some());
}

/// Portico's own APIs (in-process targets) answer on `gateway`, not on the device host.
#[tokio::test]
async fn in_process_apis_are_not_served_on_southgate() {
    use portico_gateway::{body::full, from_tower, Services};
    let (a, b) = (backend("A").await, backend("B").await);
    let mut registry = example_registry(a, b);
    let mut own = registry.apis[0].clone();
    own.name = "own".into();
    own.provider = None;
    own.backend = "internal:own".into();
    own.origin = portico_store::Origin::Builtin;
    registry.apis.push(own);
    let mut services = Services::new();
    let service = tower::service_fn(|_req: http::Request<portico_gateway::body::Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(full("own")))
    });
    services.insert("own".into(), from_tower(service));
    let gw = start_with(&registry, services, |_| {}).await;
    let r = get(gw.addr, GATEWAY_HOST, "/api/own/v3/assets/1", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "own"));
    let r = get(
        gw.addr,
        "southgate.eu1.portico.localhost",
        "/api/own/v3/assets/1",
        &[],
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = get(
        gw.addr,
        "southgate.eu1.portico.localhost",
        "/api/iot-xyz/v3/assets/1",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "registered APIs are served to devices");
}

#[tokio::test]
async fn two_host_headers_are_refused() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    let r = get(
        gw.addr,
        WEBAPP_HOST,
        "/",
        &["Host: gateway.eu1.portico.localhost"],
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
}

/// GW-17..GW-20 through a real connection: Cache-Control from backend, app or default,
/// the HTTP/1.0 extras, the security headers and the default CSP on web-app responses.
#[tokio::test]
async fn web_app_responses_get_the_gateway_headers() {
    let (a, b) = (backend("A").await, backend("B").await);
    let mut registry = example_registry(a, b);
    let gw = start(&registry, |_| {}).await;
    let host_with_port = format!("{WEBAPP_HOST}:8443");

    let r = get(gw.addr, &host_with_port, "/page", &[]).await;
    assert_eq!(
        r.header("cache-control"),
        Some("no-cache, no-store, max-age=0, must-revalidate")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-xss-protection"), Some("1; mode=block"));
    assert_eq!(
        r.header("content-security-policy"),
        Some(
            "default-src 'self' static.eu1.portico.localhost:8443; style-src * 'unsafe-inline'; \
             script-src 'self' 'unsafe-inline' static.eu1.portico.localhost:8443; img-src * data:;"
        )
    );
    assert_eq!(r.header("pragma"), None, "HTTP/1.1 clients get no Pragma");

    let r = get(gw.addr, WEBAPP_HOST, "/cache-control", &[]).await;
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=60"),
        "the backend's value is forwarded"
    );
    let r = get(gw.addr, WEBAPP_HOST, "/own-policy", &[]).await;
    assert_eq!(
        r.header("content-security-policy"),
        None,
        "an app's own policy is kept"
    );

    let request = format!("GET /page HTTP/1.0\r\nHost: {WEBAPP_HOST}\r\n\r\n");
    let r = &parse_responses(&raw_bytes(gw.addr, request.as_bytes()).await)[0];
    assert_eq!(
        (r.header("pragma"), r.header("expires")),
        (Some("no-cache"), Some("0"))
    );

    registry.webapps[0].cache_control = Some("private, max-age=5".into());
    assert!(gw.gateway.install(&registry).is_empty());
    let r = get(gw.addr, WEBAPP_HOST, "/page", &[]).await;
    assert_eq!(
        r.header("cache-control"),
        Some("private, max-age=5"),
        "the app's default"
    );

    let r = get(gw.addr, GATEWAY_HOST, "/api/iot-xyz/v3/assets/1", &[]).await;
    assert_eq!(
        r.header("content-security-policy"),
        None,
        "API responses are left as they are"
    );
}

/// GW-13: past the connection limit a client is answered 503 with `Retry-After` at once,
/// never left hanging; a freed slot serves the next one.
#[tokio::test]
async fn connections_over_the_limit_get_503_with_retry_after() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |c| c.max_connections = 2).await;
    let mut held = served_connections(gw.addr, 2).await;
    let r = get(gw.addr, WEBAPP_HOST, "/", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["status"], 503);
    assert!(gw
        .gateway
        .metrics()
        .encode()
        .contains("portico_rejected_connections_total 1"));

    held.pop();
    let served = async {
        loop {
            if get(gw.addr, WEBAPP_HOST, "/", &[]).await.status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("a freed slot serves again");
}

/// The default limit, as written: 400 connections are served at once, the 401st is
/// answered 503. (Needs about 800 file descriptors: both ends of every connection.)
#[tokio::test]
async fn the_401st_connection_gets_503_at_the_default_limit() {
    let (a, b) = (backend("A").await, backend("B").await);
    let gw = start(&example_registry(a, b), |_| {}).await;
    assert_eq!(gw.gateway.config().max_connections, 400);
    // Held open until the end: each keeps its permit.
    let _held = served_connections(gw.addr, 400).await;
    let r = get(gw.addr, WEBAPP_HOST, "/", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("retry-after").is_some());
}

/// `count` connections to the web app, each served one request and then held open.
async fn served_connections(
    addr: std::net::SocketAddr,
    count: usize,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET / HTTP/1.1\r\nHost: {WEBAPP_HOST}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    held
}
