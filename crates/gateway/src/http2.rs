//! HTTP/2 from clients (ALPN `h2` on the TLS listener). The requests go through the same
//! [`crate::Gateway::handle`] as HTTP/1.1 ones: same routing, limits, headers and errors.
//! What differs is at the edges, and lives here: the connection's settings, the request
//! head limit (HTTP/2 has no head guard in front of it), and the fields HTTP/2 carries
//! differently from HTTP/1.1 (split `cookie` fields, no connection-specific headers).
//!
//! Not offered: WebSockets over HTTP/2 (RFC 8441 extended CONNECT; the server never
//! advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`, so browsers open a separate HTTP/1.1
//! connection for WebSockets), server push, and h2c on the plain listener.

use http::header::{self, HeaderMap, HeaderValue};
use http::Request;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Streams a client may have open at once on one connection. nginx's default
/// (`http2_max_concurrent_streams 128`); each connection still counts once against
/// `max_connections`.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The header list size the connection itself accepts: twice the configured limit.
/// Between the limit and this ceiling a request is answered by the gateway (431 with its
/// error body); over the ceiling the HTTP/2 layer refuses the stream with a bare 431 and
/// never buffers more. Clients learn the ceiling from `SETTINGS_MAX_HEADER_LIST_SIZE`.
pub fn header_list_ceiling(max_header_size: usize) -> u32 {
    u32::try_from(max_header_size.saturating_mul(2)).unwrap_or(u32::MAX)
}

/// A server builder for one client connection.
pub fn builder(max_header_size: usize) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(header_list_ceiling(max_header_size));
    // No keep-alive pings: an idle connection is closed by the idle timeout, as an idle
    // HTTP/1.1 keep-alive connection is; pings would keep it open forever. And no
    // `enable_connect_protocol()`: see the module comment.
    builder
}

/// The size of a request's header list as HTTP/2 counts it (RFC 9113 §6.5.2): every
/// field's name and value plus 32, pseudo-header fields included.
pub fn header_list_size<B>(request: &Request<B>) -> usize {
    const OVERHEAD: usize = 32;
    let uri = request.uri();
    let pseudo = [
        (":method", request.method().as_str().len()),
        (":scheme", uri.scheme_str().map_or(0, str::len)),
        (
            ":authority",
            uri.authority().map_or(0, |a| a.as_str().len()),
        ),
        (
            ":path",
            uri.path_and_query().map_or(0, |pq| pq.as_str().len()),
        ),
    ];
    let pseudo: usize = pseudo
        .iter()
        .map(|(name, len)| name.len() + len + OVERHEAD)
        .sum();
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + OVERHEAD)
        .sum();
    pseudo + fields
}

/// Joins the `cookie` fields HTTP/2 may send separately into the one header an HTTP/1.1
/// backend expects (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for value in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_fields_are_joined_for_http1_backends() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2; c=3");
        let mut one = HeaderMap::new();
        one.append(header::COOKIE, HeaderValue::from_static("a=1"));
        join_cookies(&mut one);
        assert_eq!(one[header::COOKIE], "a=1");
    }

    #[test]
    fn header_list_size_counts_pseudo_fields_and_overhead() {
        let request = Request::get("https://a.example/p?q")
            .header("x-a", "12345")
            .body(())
            .unwrap();
        // :method GET, :scheme https, :authority a.example, :path /p?q, x-a 12345.
        let expected = (7 + 3) + (7 + 5) + (10 + 9) + (5 + 4) + (3 + 5) + 5 * 32;
        assert_eq!(header_list_size(&request), expected);
        assert_eq!(header_list_ceiling(16_000), 32_000);
    }
}
