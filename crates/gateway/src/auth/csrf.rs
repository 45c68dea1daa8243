//! Cross-site request forgery (ID-5). A browser sends a session's cookies with any
//! request to the app's host, also one a foreign page makes it send; two things such a
//! page cannot do are read the `XSRF-TOKEN` cookie to echo it in `X-XSRF-TOKEN`, and
//! give its request the app's `Origin`. State-changing requests in a session need both.
//! WebSocket handshakes in a session need the origin (browsers cannot add headers to
//! them, and always send `Origin`).

use super::XSRF_HEADER;
use http::header::{self, HeaderMap};
use http::Method;
use subtle::ConstantTimeEq;

/// POST, PUT, PATCH and DELETE change state; the other methods must not.
pub fn changes_state(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The origin of the app as the client addressed it: scheme, and the `Host` it sent,
/// normalised (lower case, no default port).
pub fn own_origin(tls: bool, host: &str) -> String {
    normalise(if tls { "https" } else { "http" }, host)
}

/// Checks the echoed CSRF token against the session's, in constant time. Exactly one
/// `X-XSRF-TOKEN` header is accepted.
pub fn check_token(headers: &HeaderMap, session_token: &str) -> Result<(), &'static str> {
    let mut sent = headers.get_all(XSRF_HEADER).iter();
    let (Some(token), None) = (sent.next(), sent.next()) else {
        return Err("The request needs the session's CSRF token in one X-XSRF-TOKEN header");
    };
    let same: bool = token.as_bytes().ct_eq(session_token.as_bytes()).into();
    if same && !session_token.is_empty() {
        Ok(())
    } else {
        Err("The X-XSRF-TOKEN header does not hold this session's CSRF token")
    }
}

/// Checks that the request comes from a page of `own` origin: its `Origin` header, or
/// without one its `Referer`, must name that origin.
pub fn check_origin(headers: &HeaderMap, own: &str) -> Result<(), &'static str> {
    let sent = match single(headers, &header::ORIGIN) {
        Some(origin) => origin_of(origin),
        None => match single(headers, &header::REFERER) {
            Some(referer) => origin_of(referer),
            None => return Err("The request needs an Origin (or Referer) header"),
        },
    };
    match sent {
        Some(origin) if origin == own => Ok(()),
        _ => Err("The request does not come from a page of this application's origin"),
    }
}

fn single<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// `scheme://host[:port]` of an origin or URL, normalised; `None` for `null`, opaque
/// origins, user info, or anything not http(s).
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(normalise(&scheme, authority))
}

fn normalise(scheme: &str, authority: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_state_changing_methods_need_the_check() {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(changes_state(&m));
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!changes_state(&m));
        }
    }

    #[test]
    fn the_token_must_be_the_sessions() {
        assert!(check_token(&headers(&[("x-xsrf-token", "t1")]), "t1").is_ok());
        assert!(check_token(&headers(&[("x-xsrf-token", "t2")]), "t1").is_err());
        assert!(check_token(&headers(&[("x-xsrf-token", "t1x")]), "t1").is_err());
        assert!(check_token(&headers(&[]), "t1").is_err());
        assert!(check_token(
            &headers(&[("x-xsrf-token", "t1"), ("x-xsrf-token", "t1")]),
            "t1"
        )
        .is_err());
        assert!(check_token(&headers(&[("x-xsrf-token", "")]), "").is_err());
    }

    #[test]
    fn the_origin_must_be_the_apps_own() {
        let own = own_origin(false, "ABC-Shop.eu1.portico.localhost:8080");
        assert_eq!(own, "http://abc-shop.eu1.portico.localhost:8080");
        let ok = |list| check_origin(&headers(list), &own).is_ok();
        assert!(ok(&[(
            "origin",
            "http://abc-shop.eu1.portico.localhost:8080"
        )]));
        assert!(ok(&[(
            "referer",
            "http://abc-shop.eu1.portico.localhost:8080/page?x=1"
        )]));
        assert!(!ok(&[("origin", "http://evil.example:8080")]));
        assert!(!ok(&[(
            "origin",
            "https://abc-shop.eu1.portico.localhost:8080"
        )]));
        assert!(!ok(&[("origin", "http://abc-shop.eu1.portico.localhost")]));
        assert!(!ok(&[("origin", "null")]));
        assert!(!ok(&[]));
        assert!(!ok(&[(
            "referer",
            "http://abc-shop.eu1.portico.localhost:8080@evil.example/"
        )]));
        // Origin wins over Referer.
        assert!(!ok(&[
            ("origin", "http://evil.example"),
            ("referer", "http://abc-shop.eu1.portico.localhost:8080/")
        ]));
        // Default ports are the same origin as none.
        let tls = own_origin(true, "a-b.eu1.portico.localhost:443");
        assert!(check_origin(
            &headers(&[("origin", "https://a-b.eu1.portico.localhost")]),
            &tls
        )
        .is_ok());
    }
}
