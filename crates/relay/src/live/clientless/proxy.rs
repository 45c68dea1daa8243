//! One browser request proxied to the device's web server over a tunnel stream: HTTP/1.1
//! (hyper's client connection, with upgrades for WebSockets), TLS first for `https`.
//!
//! The device sees the request as if the browser had addressed it directly: `Host` (and
//! `Origin`/`Referer` of the Portico host) name the device's own origin, so device pages
//! that check them keep working. A `Location` naming the device's origin comes back naming
//! the Portico host. Everything runs until the session is cut: then the connection, and
//! a WebSocket joined over it, are dropped at once.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::access::{ClientlessError, WebTarget};
use super::tls;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of a proxied response (the gateway's body type).
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A byte stream to the device's web server, plain or in TLS.
trait DeviceIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DeviceIo for T {}

/// Headers of one connection that a response must not carry on (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

/// Resolves when the browser's Portico session ends (sign-out or expiry).
pub type SignedOut = BoxFuture<'static, ()>;

/// Sends `request` to the device over `stream` and returns its answer; `own_origin` is the
/// Portico host's origin as the browser uses it (`https://acme-remote-….eu1.example.org`).
/// A WebSocket joined here ends when the session is cut or when `signed_out` resolves.
pub async fn forward<S, B>(
    stream: S,
    target: &WebTarget,
    own_origin: &str,
    mut request: Request<B>,
    cut: CancellationToken,
    signed_out: Option<SignedOut>,
) -> Result<Response<ProxyBody>, ClientlessError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let unreachable = |e: &dyn std::fmt::Display| ClientlessError::Device(e.to_string());
    let wants_upgrade = request.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let outbound = outbound_request(request, target, own_origin)?;

    let sent = async {
        let io: Box<dyn DeviceIo> = if target.tls {
            let connector = tls::device_connector().map_err(|e| unreachable(&e))?;
            let name = tls::server_name(&target.host).map_err(|e| unreachable(&e))?;
            Box::new(
                connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| unreachable(&format!("TLS handshake failed: {e}")))?,
            )
        } else {
            Box::new(stream)
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| unreachable(&e))?;
        let connection_cut = cut.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection.with_upgrades() => {
                    if let Err(error) = ended {
                        tracing::debug!(%error, "clientless connection to the device ended");
                    }
                }
                () = connection_cut.cancelled() => {}
            }
        });
        sender
            .send_request(outbound)
            .await
            .map_err(|e| unreachable(&e))
    };
    let session = target.session.id.clone();
    let mut response = tokio::select! {
        response = sent => response?,
        () = cut.cancelled() => return Err(ClientlessError::Ended(session)),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ClientlessError::Device(
                "the device switched protocols unasked".into(),
            ));
        };
        let device_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let joined = async {
                let (Ok(client), Ok(device)) = (client_upgrade.await, device_upgrade.await) else {
                    tracing::debug!("a clientless WebSocket upgrade was abandoned by one side");
                    return;
                };
                let (mut client, mut device) = (TokioIo::new(client), TokioIo::new(device));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut device).await;
            };
            let signed_out = async {
                match signed_out {
                    Some(ended) => ended.await,
                    None => std::future::pending().await,
                }
            };
            // Cut or signed out: both upgraded connections are dropped, so the browser's
            // WebSocket closes.
            tokio::select! {
                () = joined => {}
                () = cut.cancelled() => {}
                () = signed_out => {}
            }
        });
    } else {
        for name in HOP_BY_HOP {
            response.headers_mut().remove(name);
        }
        response.headers_mut().remove("keep-alive");
    }
    rewrite_location(response.headers_mut(), &target.origin(), own_origin);
    Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
}

/// The request as the device receives it: origin-form target, HTTP/1.1, `Host` (and the
/// Portico host's `Origin` and `Referer`) naming the device.
fn outbound_request<B>(
    request: Request<B>,
    target: &WebTarget,
    own_origin: &str,
) -> Result<Request<ProxyBody>, ClientlessError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    parts.uri = path
        .parse()
        .map_err(|_| ClientlessError::Device("the request target cannot be forwarded".into()))?;
    parts.version = Version::HTTP_11;
    let device_origin = target.origin();
    let headers = &mut parts.headers;
    let host = HeaderValue::from_str(&target.authority())
        .map_err(|_| ClientlessError::Device("the target host cannot be named".into()))?;
    headers.insert(header::HOST, host);
    for name in [header::ORIGIN, header::REFERER] {
        replace_origin(headers, &name, own_origin, &device_origin);
    }
    let mut outbound = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
    outbound.extensions_mut().clear();
    Ok(outbound)
}

/// Rewrites header `name` when it starts with origin `from`, to start with `to` instead.
fn replace_origin(headers: &mut HeaderMap, name: &HeaderName, from: &str, to: &str) {
    let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(rest) = strip_origin(value, from) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{to}{rest}")) {
        headers.insert(name.clone(), value);
    }
}

/// `value` without the leading `origin` (ASCII case ignored), if it is followed by the end,
/// a path, a query or a fragment.
fn strip_origin<'a>(value: &'a str, origin: &str) -> Option<&'a str> {
    let head = value.get(..origin.len())?;
    let rest = value.get(origin.len()..)?;
    let whole = rest.is_empty() || rest.starts_with(['/', '?', '#']);
    (head.eq_ignore_ascii_case(origin) && whole).then_some(rest)
}

/// A redirect to the device's own origin stays on the Portico host.
fn rewrite_location(headers: &mut HeaderMap, device_origin: &str, own_origin: &str) {
    replace_origin(headers, &header::LOCATION, device_origin, own_origin);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_origins_are_replaced() {
        let own = "https://acme-remote-ab.eu1.example.org";
        let device = "http://10.0.0.5:8080";
        let mut headers = HeaderMap::new();
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("https://ACME-remote-ab.eu1.example.org/plc/index.html"),
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://acme-remote-ab.eu1.example.org.evil"),
        );
        replace_origin(&mut headers, &header::REFERER, own, device);
        replace_origin(&mut headers, &header::ORIGIN, own, device);
        assert_eq!(
            headers[header::REFERER],
            "http://10.0.0.5:8080/plc/index.html"
        );
        assert_eq!(
            headers[header::ORIGIN],
            "https://acme-remote-ab.eu1.example.org.evil"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("http://10.0.0.5:8080?x=1"),
        );
        rewrite_location(&mut headers, device, own);
        assert_eq!(headers[header::LOCATION], format!("{own}?x=1"));
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_static("/login"));
        rewrite_location(&mut headers, device, own);
        assert_eq!(headers[header::LOCATION], "/login");
    }
}
