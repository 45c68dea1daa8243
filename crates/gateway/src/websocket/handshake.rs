//! The opening handshake checks (GW-22, RFC 6455 §4): the client's upgrade request before
//! the gateway opens its own upgrade to the backend, and the backend's 101 before the
//! gateway answers the client with it.

use crate::error::GatewayError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Version};
use sha1::{Digest, Sha1};

/// The one protocol version of RFC 6455.
pub const VERSION: &str = "13";

/// The GUID a server appends to the key to prove it read the handshake (§1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What the gateway keeps of a valid client handshake to check the backend's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    /// `Sec-WebSocket-Key` as sent.
    pub key: String,
    /// Subprotocols offered, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Names of the extensions offered (e.g. `permessage-deflate`).
    pub extensions: Vec<String>,
}

/// Checks a WebSocket upgrade request: GET over HTTP/1.1, version 13, a key that is 16
/// bytes in base64, and, if present, a `Sec-WebSocket-Protocol` that names protocols.
pub fn check_request(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<ClientHandshake, GatewayError> {
    if method != Method::GET {
        return Err(GatewayError::bad_request(
            "A WebSocket handshake must be a GET request",
        ));
    }
    if version != Version::HTTP_11 {
        return Err(GatewayError::bad_request(
            "A WebSocket handshake must use HTTP/1.1",
        ));
    }
    let version_ok = single(headers, &header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes().trim_ascii() == VERSION.as_bytes());
    if !version_ok {
        // RFC 6455 §4.2.2: name the versions this server speaks. 426 is the status for
        // "use another protocol version", and RFC 9110 §15.5.22 wants `Upgrade` on it.
        return Err(GatewayError::new(
            StatusCode::UPGRADE_REQUIRED,
            "Only WebSocket version 13 (RFC 6455) is supported",
        )
        .with_header(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static(VERSION),
        )
        .with_header(header::UPGRADE, HeaderValue::from_static("websocket")));
    }
    let key = single(headers, &header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| is_valid_key(k))
        .ok_or_else(|| {
            GatewayError::bad_request(
                "Sec-WebSocket-Key must be one header holding 16 bytes in base64",
            )
        })?
        .to_string();
    let protocols = offered_protocols(headers)?;
    let extensions = list_items(headers, &header::SEC_WEBSOCKET_EXTENSIONS)
        .filter_map(|item| item.split(';').next())
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    Ok(ClientHandshake {
        key,
        protocols,
        extensions,
    })
}

/// Checks the backend's 101: it must switch to `websocket`, prove it read this key, and
/// choose at most one subprotocol and only extensions that the client offered. The error
/// says what was wrong, for the log; the client gets a plain 502.
pub fn check_response(client: &ClientHandshake, headers: &HeaderMap) -> Result<(), String> {
    let upgrade_ok = headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    if !upgrade_ok {
        return Err("the 101 does not switch to websocket".into());
    }
    let accept = single(headers, &header::SEC_WEBSOCKET_ACCEPT)
        .map(|v| v.as_bytes().trim_ascii())
        .ok_or("no single Sec-WebSocket-Accept")?;
    if accept != accept_key(&client.key).as_bytes() {
        return Err("Sec-WebSocket-Accept does not match the key".into());
    }
    let chosen: Vec<&str> = list_items(headers, &header::SEC_WEBSOCKET_PROTOCOL).collect();
    match chosen.as_slice() {
        [] => {}
        [one] if client.protocols.iter().any(|p| p == one) => {}
        [one] => return Err(format!("subprotocol \"{one}\" was not offered")),
        _ => return Err("more than one subprotocol chosen".into()),
    }
    for item in list_items(headers, &header::SEC_WEBSOCKET_EXTENSIONS) {
        let name = item.split(';').next().unwrap_or_default().trim();
        if !client
            .extensions
            .iter()
            .any(|e| e.eq_ignore_ascii_case(name))
        {
            return Err(format!("extension \"{name}\" was not offered"));
        }
    }
    Ok(())
}

/// `Sec-WebSocket-Accept` for `key` (§4.2.2 step 5.4).
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(ACCEPT_GUID);
    STANDARD.encode(sha1.finalize())
}

/// A key is 16 bytes in padded base64: 24 characters (§4.1 item 7).
fn is_valid_key(key: &str) -> bool {
    key.len() == 24
        && STANDARD
            .decode(key)
            .is_ok_and(|decoded| decoded.len() == 16)
}

/// The subprotocols offered, in order. An offer must name something: an empty header, or
/// one of only commas, is refused (GW-22), as is an item that is not an HTTP token.
fn offered_protocols(headers: &HeaderMap) -> Result<Vec<String>, GatewayError> {
    let mut protocols = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let text = value.to_str().map_err(|_| {
            GatewayError::bad_request("Sec-WebSocket-Protocol must be ASCII tokens")
        })?;
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if items.is_empty() {
            return Err(GatewayError::bad_request(
                "Sec-WebSocket-Protocol is empty: name a subprotocol or leave the header out",
            ));
        }
        if let Some(bad) = items.iter().find(|p| !is_token(p)) {
            return Err(GatewayError::bad_request(format!(
                "Sec-WebSocket-Protocol \"{bad}\" is not a valid subprotocol name"
            )));
        }
        protocols.extend(items.into_iter().map(str::to_string));
    }
    Ok(protocols)
}

/// The one value of `name`, or none when it is missing or repeated.
fn single<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// The non-empty items of a comma-separated header, across its lines. Parameters after
/// `;` stay with their item; quoted commas do not occur in these headers' grammars.
fn list_items<'a>(
    headers: &'a HeaderMap,
    name: &header::HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// An HTTP token (RFC 9110 §5.6.2).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        h.insert("sec-websocket-key", HeaderValue::from_static(KEY));
        for (name, value) in extra {
            h.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    fn check(h: &HeaderMap) -> Result<ClientHandshake, GatewayError> {
        check_request(&Method::GET, Version::HTTP_11, h)
    }

    #[test]
    fn the_rfc_example_key_gives_the_rfc_example_accept() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_valid_request_keeps_the_offers_in_order() {
        let h = request(&[
            ("sec-websocket-protocol", "ocpp2.0, ocpp1.6"),
            ("sec-websocket-protocol", "mqtt"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits, x-webkit",
            ),
        ]);
        let hs = check(&h).unwrap();
        assert_eq!(hs.protocols, ["ocpp2.0", "ocpp1.6", "mqtt"]);
        assert_eq!(hs.extensions, ["permessage-deflate", "x-webkit"]);
    }

    #[test]
    fn wrong_versions_get_426_naming_13() {
        for version in [None, Some("8"), Some("13, 8")] {
            let mut h = request(&[]);
            h.remove("sec-websocket-version");
            if let Some(v) = version {
                h.insert("sec-websocket-version", HeaderValue::from_str(v).unwrap());
            }
            let e = check(&h).unwrap_err();
            assert_eq!(e.status, StatusCode::UPGRADE_REQUIRED);
            assert!(e
                .headers
                .iter()
                .any(|(n, v)| n == header::SEC_WEBSOCKET_VERSION && v == "13"));
        }
    }

    #[test]
    fn bad_keys_get_400() {
        for key in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=!",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let mut h = request(&[]);
            h.insert("sec-websocket-key", HeaderValue::from_str(key).unwrap());
            assert_eq!(
                check(&h).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{key}"
            );
        }
        let mut h = request(&[]);
        h.append("sec-websocket-key", HeaderValue::from_static(KEY));
        assert_eq!(check(&h).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn empty_or_malformed_subprotocols_get_400() {
        for value in ["", " ", ",", " , ", "a b", "ocpp1.6, {x}"] {
            let h = request(&[("sec-websocket-protocol", value)]);
            assert_eq!(
                check(&h).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{value:?}"
            );
        }
    }

    #[test]
    fn only_get_over_http11() {
        let h = request(&[]);
        assert!(check_request(&Method::POST, Version::HTTP_11, &h).is_err());
        assert!(check_request(&Method::GET, Version::HTTP_10, &h).is_err());
    }

    fn response(extra: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert(
            "sec-websocket-accept",
            HeaderValue::from_str(&accept_key(KEY)).unwrap(),
        );
        for (name, value) in extra {
            h.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_backend_must_prove_the_key_and_choose_among_the_offers() {
        let client = check(&request(&[
            ("sec-websocket-protocol", "ocpp2.0, ocpp1.6"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ]))
        .unwrap();
        assert!(check_response(&client, &response(&[])).is_ok());
        assert!(
            check_response(&client, &response(&[("sec-websocket-protocol", "ocpp1.6")])).is_ok()
        );
        assert!(check_response(
            &client,
            &response(&[(
                "sec-websocket-extensions",
                "permessage-deflate; server_no_context_takeover"
            )])
        )
        .is_ok());
        assert!(check_response(&client, &response(&[("sec-websocket-protocol", "mqtt")])).is_err());
        assert!(check_response(
            &client,
            &response(&[("sec-websocket-protocol", "ocpp1.6, ocpp2.0")])
        )
        .is_err());
        assert!(check_response(
            &client,
            &response(&[("sec-websocket-extensions", "x-other")])
        )
        .is_err());
        let mut wrong = response(&[]);
        wrong.insert("sec-websocket-accept", HeaderValue::from_static("AAAA"));
        assert!(check_response(&client, &wrong).is_err());
        let mut not_ws = response(&[]);
        not_ws.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(check_response(&client, &not_ws).is_err());
    }
}
