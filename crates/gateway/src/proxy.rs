//! The streaming HTTP/1.1 reverse proxy (SPEC GW-12, GW-16): bodies flow through in both
//! directions without being collected, hop-by-hop headers stay on their hop, and the
//! backend learns who asked through `X-Forwarded-*`, `Forwarded` and `X-Request-Id`.
//! WebSocket upgrades go through [`crate::websocket`], which uses [`Proxy::send`].

use crate::backend_pool::{BackendPool, SendError};
use crate::body::{boxed, Body};
use crate::client::HttpClient;
use crate::error::GatewayError;
use futures_util::future::Either;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response, StatusCode, Uri, Version};
use rustls::pki_types::CertificateDer;
use std::future::Future;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// Who asked, as the backend should learn it. The host and the request id are header
/// values, so that they go into the messages as they are, without a check and a copy each.
#[derive(Debug, Clone)]
pub struct Forwarding<'a> {
    pub client_ip: IpAddr,
    pub tls: bool,
    /// The host the client asked for, as it came ...
    pub original_host: &'a HeaderValue,
    /// ... and as text.
    pub host: &'a str,
    pub request_id: &'a HeaderValue,
    /// The values made for earlier requests of the same connection, where the caller
    /// keeps them.
    pub made: Option<&'a ConnForwarding>,
}

/// The forwarding header values of one client connection, made at its first request and
/// shared by the ones after it: the client's address is the same for all of them, and
/// the host nearly always is. Made for each request, the two values cost two buffers, two
/// checks of every byte and the address's formatting: a fiftieth of a small request.
#[derive(Debug, Default)]
pub struct ConnForwarding {
    /// `X-Forwarded-For`'s item: the client's address.
    client: OnceLock<HeaderValue>,
    /// `Forwarded`'s item, for the host of the connection's first request (kept beside it).
    forwarded: OnceLock<(HeaderValue, HeaderValue)>,
}

impl ConnForwarding {
    fn client(&self, fwd: &Forwarding<'_>) -> HeaderValue {
        self.client.get_or_init(|| client_value(fwd)).clone()
    }

    fn forwarded(&self, fwd: &Forwarding<'_>) -> HeaderValue {
        let (host, value) = self
            .forwarded
            .get_or_init(|| (fwd.original_host.clone(), forwarded_value(fwd)));
        match host == fwd.original_host {
            true => value.clone(),
            false => forwarded_value(fwd),
        }
    }
}

impl Forwarding<'_> {
    /// The scheme the client used, as the forwarding headers name it.
    fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The request id as text (made by the gateway, or checked to be visible ASCII).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }
}

/// Headers that belong to one connection (RFC 7230 §6.1) and are never forwarded, plus
/// the ones a client addresses to a proxy, and `Upgrade`, whose protocol is for this
/// connection only (RFC 7230 §6.7) unless the hop carries a WebSocket upgrade.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those named in `Connection`. `Upgrade` is
/// removed too unless this hop carries a WebSocket upgrade.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds what there is to remove; most messages carry none
    // of these headers, or only `Connection`, and each removal is a hashed lookup.
    let present = crate::headers::present(headers, &HOP_BY_HOP);
    // `HOP_BY_HOP` starts with `Connection`. The common `Connection: keep-alive` names
    // only a header removed anyway: its list is not read.
    let names_others = || {
        headers.get_all(header::CONNECTION).iter().any(|v| {
            !v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"keep-alive")
        })
    };
    if present[0] && names_others() {
        // Names that are hop-by-hop anyway are not collected.
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|name| !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in &listed {
            headers.remove(name);
        }
    }
    let kept = |name: &str| keep_upgrade && name == "upgrade";
    for (name, _) in HOP_BY_HOP
        .iter()
        .zip(present)
        .filter(|(name, present)| *present && !kept(name))
    {
        headers.remove(*name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

// Made at compile time; `HeaderName::from_static` at run time checks the name each call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether a byte cannot stand in a quoted string as it is.
fn quoting(b: &u8) -> bool {
    matches!(b, b'"' | b'\\')
}

/// Sets the forwarding headers of RFC 7239 and their de-facto `X-Forwarded-*` kin.
pub fn set_forwarding_headers(headers: &mut HeaderMap, fwd: &Forwarding<'_>) {
    let (client, forwarded) = match fwd.made {
        Some(made) => (made.client(fwd), made.forwarded(fwd)),
        None => (client_value(fwd), forwarded_value(fwd)),
    };
    // Room for the five headers below at once: growing the map rehashes what it holds.
    headers.reserve(5);
    append_list(headers, X_FORWARDED_FOR, client);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto()));
    headers.insert(X_FORWARDED_HOST, fwd.original_host.clone());
    append_list(headers, header::FORWARDED, forwarded);
    headers.insert(crate::REQUEST_ID, fwd.request_id.clone());
}

/// The client's address as `X-Forwarded-For` names it.
fn client_value(fwd: &Forwarding<'_>) -> HeaderValue {
    shared_value(ip_text(fwd.client_ip))
}

/// The client's element of `Forwarded`: `for=…;proto=…;host="…"`.
fn forwarded_value(fwd: &Forwarding<'_>) -> HeaderValue {
    let client = ip_text(fwd.client_ip);
    let (open, close) = match fwd.client_ip {
        IpAddr::V4(_) => ("for=", ""),
        IpAddr::V6(_) => ("for=\"[", "]\""),
    };
    // A valid host has no quote or backslash; leaving them out guards the quoted string.
    // Looked for with a vectorised search first, since there almost never are any: a
    // byte-by-byte count and split cost a tenth of this function.
    let original_host = fwd.host.as_bytes();
    let quotes = match memchr::memchr2(b'"', b'\\', original_host) {
        None => 0,
        Some(_) => original_host.iter().filter(|b| quoting(b)).count(),
    };
    // Written into one buffer of exactly its length, which becomes the header's value
    // without a copy (a buffer with room to spare would cost a second allocation).
    let parts: [&[u8]; 6] = [
        open.as_bytes(),
        &client,
        close.as_bytes(),
        b";proto=",
        fwd.proto().as_bytes(),
        b";host=\"",
    ];
    let mut forwarded = Vec::with_capacity(
        parts.iter().map(|p| p.len()).sum::<usize>() + original_host.len() - quotes + 1,
    );
    parts
        .iter()
        .for_each(|part| forwarded.extend_from_slice(part));
    match quotes {
        0 => forwarded.extend_from_slice(original_host),
        _ => original_host
            .split(quoting)
            .for_each(|piece| forwarded.extend_from_slice(piece)),
    }
    forwarded.push(b'"');
    shared_value(forwarded)
}

/// A header value that takes over `bytes`. Both callers build values of visible ASCII
/// only (an address, and a host checked to be visible ASCII without its quotes), so the
/// empty value stands in for a failure that cannot happen.
fn shared_value(bytes: Vec<u8>) -> HeaderValue {
    HeaderValue::try_from(bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// An address as text, in a buffer of exactly its length (see
/// [`set_forwarding_headers`]); IPv4, the common case, without the formatting machinery,
/// which showed in per-request profiles.
fn ip_text(ip: IpAddr) -> Vec<u8> {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string().into_bytes();
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = match octet {
            100.. => 0,
            10.. => 1,
            _ => 2,
        };
        for digit in &digits[skip..] {
            text[len] = b'0' + digit;
            len += 1;
        }
    }
    text[..len].to_vec()
}

/// Appends `item` to a comma-separated list header, joining the lines earlier hops may
/// have sent into one. One lookup: most requests come without the header.
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: HeaderValue) {
    let mut entry = match headers.entry(name) {
        header::Entry::Vacant(vacant) => {
            vacant.insert(item);
            return;
        }
        header::Entry::Occupied(entry) => entry,
    };
    let mut list = Vec::new();
    for value in entry
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        list.extend_from_slice(value.as_bytes());
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(item.as_bytes());
    if let Ok(value) = HeaderValue::try_from(list) {
        entry.insert(value);
    }
}

pub struct Proxy {
    /// Plain-HTTP backends, for every request but WebSocket upgrades.
    backends: BackendPool,
    /// HTTPS backends and WebSocket upgrades.
    client: HttpClient,
    response_timeout: Duration,
}

impl Proxy {
    /// HTTPS backends are trusted by the system's roots plus `backend_roots`.
    pub fn new(
        connect_timeout: Duration,
        response_timeout: Duration,
        backend_roots: &[CertificateDer<'static>],
    ) -> Proxy {
        Proxy {
            backends: BackendPool::new(crate::client::tcp_connector(
                connect_timeout,
                Default::default(),
            )),
            client: crate::client::build(connect_timeout, backend_roots),
            response_timeout,
        }
    }

    /// Sends `request` to `uri` on a backend whose `Host` is `host` and streams the answer
    /// back. The wait for the answer is the caller's to bound, at [`Proxy::response_timeout`]
    /// and with [`Proxy::timed_out`]: the gateway does it with greylisting's timer.
    ///
    /// The backend's request is made before the future starts, so that the future holds
    /// only the exchange: it is moved whole as it starts, inside every future that awaits it.
    pub fn forward<'a>(
        &'a self,
        request: Request<Body>,
        uri: Uri,
        host: &HeaderValue,
        fwd: &Forwarding<'a>,
    ) -> impl Future<Output = Result<Response<Body>, GatewayError>> + Send + 'a {
        let backend_request = for_backend(request, uri, host, fwd, false);
        let request_id = fwd.request_id;
        let exchange = if backend_request.uri().scheme() == Some(&Scheme::HTTP) {
            // Boxed: the pool's exchange is most of a kilobyte.
            Either::Left(Box::pin(self.backends.send(backend_request)))
        } else {
            Either::Right(self.client.request(backend_request))
        };
        async move {
            let response = match exchange {
                Either::Left(pooled) => pooled.await.map_err(|e| send_error(&e))?,
                Either::Right(other) => other
                    .await
                    .map_err(|e| backend_error(&e, false))?
                    .map(boxed),
            };
            Ok(response_to_client(response, request_id))
        }
    }

    /// How long a backend may take to answer a request's head.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The error of a backend that did not answer within [`Proxy::response_timeout`].
    pub fn timed_out(&self) -> GatewayError {
        GatewayError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "The backend did not answer within {} s",
                self.response_timeout.as_secs()
            ),
        )
    }

    /// Sends `request` to the backend and returns the backend's response head as it came.
    /// With `upgrade`, the request's WebSocket upgrade headers are kept for the backend
    /// (the gateway's own upgrade, [`crate::websocket`]). As for [`Proxy::forward`], the
    /// wait for the answer is the caller's to bound.
    pub(crate) async fn send(
        &self,
        request: Request<Body>,
        uri: Uri,
        host: &HeaderValue,
        fwd: &Forwarding<'_>,
        upgrade: bool,
    ) -> Result<Response<hyper::body::Incoming>, GatewayError> {
        let backend_request = for_backend(request, uri, host, fwd, upgrade);
        self.client
            .request(backend_request)
            .await
            .map_err(|e| backend_error(&e, upgrade))
    }
}

/// The client's request as the backend gets it: its hop-by-hop headers stay behind, the
/// forwarding headers say who asked, and `Host` names the backend.
fn for_backend(
    request: Request<Body>,
    uri: Uri,
    host: &HeaderValue,
    fwd: &Forwarding<'_>,
    upgrade: bool,
) -> Request<Body> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    set_forwarding_headers(&mut parts.headers, fwd);
    parts.headers.insert(header::HOST, host.clone());
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    Request::from_parts(parts, body)
}

/// A backend's response on its way to the client: its hop-by-hop headers stay behind,
/// and it carries the request id.
fn response_to_client(response: Response<Body>, request_id: &HeaderValue) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    parts.headers.insert(crate::REQUEST_ID, request_id.clone());
    Response::from_parts(parts, body)
}

/// [`response_to_client`] for an answer of the upgrade client.
pub(crate) fn finish(
    response: Response<hyper::body::Incoming>,
    request_id: &HeaderValue,
) -> Response<Body> {
    response_to_client(response.map(boxed), request_id)
}

/// The gateway error for a request the backend pool could not get answered; the same
/// answers as [`backend_error`] gives for the pooled client.
fn send_error(e: &SendError) -> GatewayError {
    use std::error::Error as _;
    tracing::warn!(error = %e, source = ?e.source().and_then(|s| s.source()), "backend request failed");
    match e {
        SendError::Connect(cause) if crate::backend_pool::timed_out(cause.as_ref()) => {
            GatewayError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "The backend did not accept a connection in time",
            )
        }
        SendError::Connect(_) => GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "The backend refused the connection or is unreachable",
        ),
        SendError::Exchange(_) => GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "The backend closed the connection without a valid answer",
        ),
    }
}

fn backend_error(e: &hyper_util::client::legacy::Error, upgrade: bool) -> GatewayError {
    use std::error::Error as _;
    // The request body passed a size limit: hyper aborted the half-sent request.
    if let Some(exceeded) = crate::limits::exceeded_in(e) {
        return exceeded.error();
    }
    let timed_out = {
        let mut source = e.source();
        let mut found = false;
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                found |= io.kind() == std::io::ErrorKind::TimedOut;
            }
            found |= s.to_string().contains("timed out");
            source = s.source();
        }
        found
    };
    tracing::warn!(error = %e, source = ?e.source(), "backend request failed");
    let untrusted = certificate_refused(e);
    if upgrade {
        // GW-16: a WebSocket handshake that cannot reach its backend is a bad request.
        return GatewayError::bad_request(if untrusted {
            "The WebSocket backend's TLS certificate is not trusted"
        } else {
            "The WebSocket backend is unreachable"
        });
    }
    if untrusted {
        // The log line above says why; `proxy.backend_ca_file` is the usual remedy.
        GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "The backend's TLS certificate is not trusted",
        )
    } else if timed_out {
        GatewayError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "The backend did not accept a connection in time",
        )
    } else if e.is_connect() {
        GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "The backend refused the connection or is unreachable",
        )
    } else {
        GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "The backend closed the connection without a valid answer",
        )
    }
}

/// Whether a backend connection failed because its TLS certificate did not verify.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref() {
        return true;
    }
    // An `io::Error` hides the error it wraps from `source()`, and may wrap another.
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref());
    if wrapped.is_some_and(|inner| certificate_refused(inner)) {
        return true;
    }
    e.source().is_some_and(certificate_refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_with_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn a_plain_keep_alive_is_removed_without_reading_its_list() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static(" Keep-Alive "));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
        // A second `Connection` line naming another header is still read.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn forwarding_headers_are_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let fwd = Forwarding {
            client_ip: "::1".parse().unwrap(),
            tls: true,
            original_host: &HeaderValue::from_static("a-b.eu1.portico.localhost"),
            host: "a-b.eu1.portico.localhost",
            request_id: &HeaderValue::from_static("r1"),
            made: None,
        };
        set_forwarding_headers(&mut h, &fwd);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9, 10.0.0.1, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";proto=https;host=\"a-b.eu1.portico.localhost\""
        );
        assert_eq!(h["x-request-id"], "r1");
    }

    #[test]
    fn a_first_hop_starts_the_lists_and_quotes_stay_out_of_forwarded() {
        let mut h = HeaderMap::new();
        let fwd = Forwarding {
            client_ip: "192.0.2.7".parse().unwrap(),
            tls: false,
            original_host: &HeaderValue::from_static("a\"b\\c.example"),
            host: "a\"b\\c.example",
            request_id: &HeaderValue::from_static("r2"),
            made: None,
        };
        set_forwarding_headers(&mut h, &fwd);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.7;proto=http;host=\"abc.example\""
        );
    }

    #[test]
    fn a_connection_makes_its_values_once_and_a_request_for_another_host_its_own() {
        let made = ConnForwarding::default();
        let (first, other) = (
            HeaderValue::from_static("t-a.eu1.example"),
            HeaderValue::from_static("t-b.eu1.example"),
        );
        let headers_for = |host: &HeaderValue, made: Option<&ConnForwarding>| {
            let mut h = HeaderMap::new();
            let fwd = Forwarding {
                client_ip: "192.0.2.7".parse().unwrap(),
                tls: true,
                original_host: host,
                host: host.to_str().unwrap(),
                request_id: &HeaderValue::from_static("r3"),
                made,
            };
            set_forwarding_headers(&mut h, &fwd);
            h
        };
        for host in [&first, &first, &other, &first] {
            assert_eq!(headers_for(host, Some(&made)), headers_for(host, None));
        }
        let (kept_host, kept) = made.forwarded.get().unwrap();
        assert_eq!(
            kept_host, &first,
            "the first request's host is the one kept"
        );
        assert_eq!(
            kept, "for=192.0.2.7;proto=https;host=\"t-a.eu1.example\"",
            "a request for another host did not replace it"
        );
    }

    #[test]
    fn connection_names_are_removed_whatever_their_case_and_spacing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive ,  X-Hop,close"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("x-other"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn addresses_are_written_as_the_standard_library_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.200.19.1",
            "127.0.0.1",
            "::1",
            "fe80::2",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string().into_bytes());
        }
    }

    #[test]
    fn an_upgrade_is_kept_only_for_a_websocket_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, x-hop"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        let mut kept = h.clone();
        strip_hop_by_hop(&mut kept, true);
        assert_eq!(kept[header::CONNECTION], "upgrade");
        assert_eq!(kept[header::UPGRADE], "websocket");
        assert_eq!(kept.len(), 2);
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }
}
