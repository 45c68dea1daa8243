//! Long-polling and callback-polling: what goes in (JSON, forms, queries, suffixes) and
//! how it comes back (statuses, content types, no caching, JSONP wrapping).
#![allow(clippy::unwrap_used)]

mod transport_support;

use http::{Method, StatusCode};
use portico_realtime::transport::TransportOptions;
use transport_support::{encode, messages, Answer, Server, BASE};

const JSON: &str = "application/json;charset=UTF-8";
const SCRIPT: &str = "text/javascript;charset=UTF-8";

fn assert_json_reply(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("content-type"), JSON);
    assert_eq!(answer.header("cache-control"), "no-cache");
}

fn assert_refused(answer: &Answer, status: StatusCode, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.header("content-type"), JSON);
    let message = answer.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(says),
        "the error should say {says:?}: {message}"
    );
}

/// The replies inside `callback(...);`.
fn unwrap_jsonp(answer: &Answer, callback: &str) -> serde_json::Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("content-type"), SCRIPT);
    assert_eq!(answer.header("cache-control"), "no-cache");
    let inner = answer
        .body
        .strip_prefix(&format!("{callback}("))
        .and_then(|rest| rest.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not wrapped in {callback}(...);: {}", answer.body));
    serde_json::from_str(inner).unwrap()
}

#[tokio::test]
async fn a_json_array_is_answered_with_an_array_in_order() {
    let server = Server::default().await;
    let answer = server
        .post_json(
            BASE,
            &messages(&["/meta/handshake", "/meta/connect", "/meta/subscribe"]),
        )
        .await;
    assert_json_reply(&answer);
    assert_eq!(
        answer.channels(),
        ["/meta/handshake", "/meta/connect", "/meta/subscribe"]
    );
}

#[tokio::test]
async fn a_single_object_is_answered_with_an_array() {
    let server = Server::default().await;
    let answer = server
        .post_json(BASE, r#"{"channel":"/meta/handshake","version":"1.0"}"#)
        .await;
    assert_json_reply(&answer);
    assert_eq!(answer.channels(), ["/meta/handshake"]);
}

#[tokio::test]
async fn a_json_body_with_a_charset_or_no_content_type_is_json() {
    let server = Server::default().await;
    for content_type in ["application/json;charset=UTF-8", "text/plain"] {
        let answer = server
            .send(
                Method::POST,
                BASE,
                &[("content-type", content_type)],
                messages(&["/meta/connect"]),
            )
            .await;
        assert_json_reply(&answer);
        assert_eq!(answer.channels(), ["/meta/connect"], "{content_type}");
    }
    let answer = server
        .send(Method::POST, BASE, &[], messages(&["/meta/connect"]))
        .await;
    assert_json_reply(&answer);
}

#[tokio::test]
async fn the_message_type_suffixes_are_handled_like_the_endpoint() {
    let server = Server::default().await;
    for suffix in [
        "handshake",
        "connect",
        "subscribe",
        "unsubscribe",
        "disconnect",
    ] {
        let channel = format!("/meta/{suffix}");
        let answer = server
            .post_json(&format!("{BASE}/{suffix}"), &messages(&[&channel]))
            .await;
        assert_json_reply(&answer);
        assert_eq!(answer.channels(), [channel]);
    }
    // A batch of several types goes to the bare trailing slash.
    let batch = server
        .post_json(
            &format!("{BASE}/"),
            &messages(&["/meta/subscribe", "/meta/connect"]),
        )
        .await;
    assert_json_reply(&batch);
    assert_eq!(batch.channels(), ["/meta/subscribe", "/meta/connect"]);
    let other = server
        .post_json(&format!("{BASE}/publish"), &messages(&["/meta/connect"]))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_form_body_carries_the_messages_in_message() {
    let server = Server::default().await;
    let body = format!(
        "message={}",
        encode(&messages(&["/meta/handshake", "/meta/connect"]))
    );
    let answer = server
        .send(
            Method::POST,
            &format!("{BASE}/handshake"),
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            body,
        )
        .await;
    assert_json_reply(&answer);
    assert_eq!(answer.channels(), ["/meta/handshake", "/meta/connect"]);
}

#[tokio::test]
async fn a_form_without_message_is_refused() {
    let server = Server::default().await;
    let answer = server
        .send(
            Method::POST,
            BASE,
            &[("content-type", "application/x-www-form-urlencoded")],
            "other=1",
        )
        .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "message");
}

#[tokio::test]
async fn bodies_that_are_not_bayeux_are_refused_with_the_reason() {
    let server = Server::default().await;
    for (body, says) in [
        ("{not json", "not Bayeux"),
        ("[1, 2]", "not Bayeux"),
        ("\"text\"", "not Bayeux"),
        ("", "empty"),
    ] {
        let answer = server.post_json(BASE, body).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, says);
        assert_eq!(answer.header("cache-control"), "no-cache");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let server = Server::start(TransportOptions {
        max_body: 1024,
        ..TransportOptions::default()
    })
    .await;
    let just_fits = format!(
        r#"[{{"channel":"/meta/connect","ext":{{"pad":"{}"}}}}]"#,
        "x".repeat(900)
    );
    assert!(just_fits.len() <= 1024);
    assert_json_reply(&server.post_json(BASE, &just_fits).await);
    let too_large = format!(
        r#"[{{"channel":"/meta/connect","ext":{{"pad":"{}"}}}}]"#,
        "x".repeat(1024)
    );
    assert_refused(
        &server.post_json(BASE, &too_large).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "1024 bytes",
    );
    let long_query = format!("{BASE}?jsonp=cb&message={}", encode(&too_large));
    assert_refused(
        &server.send(Method::GET, &long_query, &[], "").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "1024 bytes",
    );
}

#[tokio::test]
async fn callback_polling_wraps_the_replies_in_the_callback() {
    let server = Server::default().await;
    let query = format!(
        "{BASE}?message={}&jsonp=__jsonp3__",
        encode(&messages(&["/meta/handshake", "/meta/connect"]))
    );
    let answer = server.send(Method::GET, &query, &[], "").await;
    let replies = unwrap_jsonp(&answer, "__jsonp3__");
    assert_eq!(
        transport_support::channels(&replies),
        ["/meta/handshake", "/meta/connect"]
    );

    // On a suffix, and as a form POST.
    let query = format!(
        "{BASE}/connect?jsonp=jQuery.cb_1&message={}",
        encode(&messages(&["/meta/connect"]))
    );
    let answer = server.send(Method::GET, &query, &[], "").await;
    unwrap_jsonp(&answer, "jQuery.cb_1");
    let body = format!(
        "jsonp=cb&message={}",
        encode(&messages(&["/meta/subscribe"]))
    );
    let answer = server
        .send(
            Method::POST,
            BASE,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
    let replies = unwrap_jsonp(&answer, "cb");
    assert_eq!(transport_support::channels(&replies), ["/meta/subscribe"]);
}

#[tokio::test]
async fn callback_names_other_than_identifiers_are_refused() {
    let server = Server::default().await;
    let message = encode(&messages(&["/meta/connect"]));
    let too_long = "a".repeat(129);
    for callback in ["alert(1)//", "a b", "1abc", "a..b", "", too_long.as_str()] {
        let query = format!("{BASE}?message={message}&jsonp={}", encode(callback));
        let answer = server.send(Method::GET, &query, &[], "").await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "callback");
        assert!(!answer.body.contains("alert(1)"), "{}", answer.body);
    }
}

#[tokio::test]
async fn a_get_with_message_but_no_callback_is_answered_as_json() {
    let server = Server::default().await;
    let query = format!("{BASE}?message={}", encode(&messages(&["/meta/connect"])));
    let answer = server.send(Method::GET, &query, &[], "").await;
    assert_json_reply(&answer);
    assert_eq!(answer.channels(), ["/meta/connect"]);
}

#[tokio::test]
async fn a_plain_get_is_neither_a_poll_nor_a_websocket() {
    let server = Server::default().await;
    let answer = server.send(Method::GET, BASE, &[], "").await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "WebSocket upgrade");
    let answer = server
        .send(Method::GET, &format!("{BASE}?jsonp=cb"), &[], "")
        .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "message=");
}

#[tokio::test]
async fn a_broken_websocket_handshake_says_what_is_wrong() {
    let server = Server::default().await;
    let answer = server
        .send(
            Method::GET,
            BASE,
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "8"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            "",
        )
        .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "version 13");
    let answer = server
        .send(
            Method::GET,
            BASE,
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
            ],
            "",
        )
        .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "Sec-WebSocket-Key");
}

#[tokio::test]
async fn other_methods_are_not_allowed() {
    let server = Server::default().await;
    let answer = server.send(Method::PUT, BASE, &[], "[]").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(TransportOptions {
        max_body: 1024,
        ..TransportOptions::default()
    })
    .await;
    let chunk = format!(
        r#"[{{"channel":"/meta/connect","pad":"{}"}}]"#,
        "x".repeat(2000)
    );
    let request = format!(
        "POST {BASE} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut response),
    )
    .await
    .expect("the server answers within 10 s")
    .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("1024 bytes"), "{response}");
}
