//! The way to one backend host: DNS, TCP (to the host, or to the proxy), and the proxy's
//! `CONNECT`. Each step reports one check; the stream comes back when all passed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::report::{Check, Sink};
use crate::config::{BackendUrl, ProxyUrl};
use crate::proxy::{self, ProxyError};

/// How long one TCP connect or one proxy answer may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP stream to `url`'s host and port (through `proxy`'s tunnel when given), or `None`
/// after a failed check.
pub async fn reach(
    url: &BackendUrl,
    proxy: Option<&ProxyUrl>,
    sink: &mut dyn Sink,
) -> Option<TcpStream> {
    let host = url.host();
    let Some(proxy) = proxy else {
        let addresses = resolve(host, url.port(), sink, true).await?;
        return connect(&addresses, &format!("{host}:{}", url.port()), sink, || {
            format!("allow outbound TCP {} to {host}", url.port())
        })
        .await;
    };
    // Through a proxy, the proxy resolves the backend's name; not resolving it here is normal.
    resolve(host, url.port(), sink, false).await;
    let proxy_name = format!("proxy {}:{}", proxy.host(), proxy.port());
    let addresses = resolve(proxy.host(), proxy.port(), sink, true).await?;
    let mut stream = connect(&addresses, &proxy_name, sink, || {
        format!(
            "check the proxy address in the configuration; ask IT whether {}:{} is the proxy \
             for this network and reachable from here",
            proxy.host(),
            proxy.port()
        )
    })
    .await?;
    let what = format!("{proxy_name} CONNECT {}", url.authority());
    let answer = tokio::time::timeout(
        STEP_TIMEOUT,
        proxy::open_tunnel(&mut stream, &url.authority(), proxy.credentials()),
    )
    .await;
    match answer {
        Ok(Ok(())) => {
            let how = match proxy.credentials() {
                Some(c) => format!("tunnel opened (Basic auth as user \"{}\")", c.user),
                None => "tunnel opened (no proxy credentials used)".to_string(),
            };
            sink.check(Check::ok(what, how));
            Some(stream)
        }
        Ok(Err(error)) => {
            sink.check(proxy_failure(what, error, url, proxy));
            None
        }
        Err(_) => {
            sink.check(Check::fail(
                what,
                format!(
                    "the proxy did not answer within {} s",
                    STEP_TIMEOUT.as_secs()
                ),
                "ask IT whether this is the right proxy and whether it is working",
            ));
            None
        }
    }
}

fn proxy_failure(what: String, error: ProxyError, url: &BackendUrl, proxy: &ProxyUrl) -> Check {
    match error {
        ProxyError::CredentialsRequired { status_line } => Check::fail(
            what,
            format!("the proxy wants credentials ({status_line})"),
            "ask IT for a proxy user and password and write them into the `proxy` URL of the \
             configuration (http://USER:PASSWORD@HOST:PORT)",
        ),
        ProxyError::CredentialsRefused { status_line } => {
            let user = proxy.credentials().map(|c| c.user.as_str()).unwrap_or("");
            Check::fail(
                what,
                format!("the proxy refused the credentials of user \"{user}\" ({status_line})"),
                "the proxy user or password in the configuration is wrong: ask IT for the \
                 right ones",
            )
        }
        ProxyError::Refused { status_line, .. } => Check::fail(
            what,
            format!("the proxy refused to open a tunnel ({status_line})"),
            format!(
                "ask IT to allow CONNECT to {} on port {} through the proxy",
                url.host(),
                url.port()
            ),
        ),
        other => Check::fail(
            what,
            other.to_string(),
            "ask IT whether this address is an HTTP proxy that supports CONNECT",
        ),
    }
}

/// The addresses of `host`. `required`: a failure is a `FAIL`, else only `info`.
async fn resolve(
    host: &str,
    port: u16,
    sink: &mut dyn Sink,
    required: bool,
) -> Option<Vec<SocketAddr>> {
    let what = format!("dns {host}");
    let looked_up = tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host, port))).await;
    let result = match looked_up {
        Ok(Ok(found)) => {
            let mut addresses: Vec<SocketAddr> = found.collect();
            addresses.dedup();
            if addresses.is_empty() {
                Err("no address".to_string())
            } else {
                Ok(addresses)
            }
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", STEP_TIMEOUT.as_secs())),
    };
    match result {
        Ok(addresses) => {
            let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            sink.check(Check::ok(what, list.join(", ")));
            Some(addresses)
        }
        Err(why) if required => {
            sink.check(Check::fail(
                what,
                format!("cannot resolve: {why}"),
                format!("ask IT for DNS resolution of {host} from this network"),
            ));
            None
        }
        Err(why) => {
            sink.check(Check::info(
                what,
                format!("not resolvable here ({why}); the proxy resolves it"),
            ));
            None
        }
    }
}

/// TCP to the first of `addresses` that accepts.
async fn connect(
    addresses: &[SocketAddr],
    name: &str,
    sink: &mut dyn Sink,
    fix: impl FnOnce() -> String,
) -> Option<TcpStream> {
    let what = format!("tcp {name}");
    let mut problems = Vec::new();
    for address in addresses {
        match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                sink.check(Check::ok(what, format!("connected to {address}")));
                return Some(stream);
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => problems
                .push(format!(
                "{address}: connection refused (nothing listens there, or a firewall rejects it)"
            )),
            Ok(Err(error)) => problems.push(format!("{address}: {error}")),
            Err(_) => problems.push(format!(
                "{address}: no answer within {} s (a firewall drops the connection)",
                STEP_TIMEOUT.as_secs()
            )),
        }
    }
    sink.check(Check::fail(what, problems.join("; "), fix()));
    None
}
