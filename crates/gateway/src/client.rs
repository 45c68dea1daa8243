//! The HTTP client the gateway uses towards backends (and the CLI towards a gateway):
//! pooled keep-alive connections, HTTP and HTTPS, connect timeout, TCP_NODELAY.

use crate::body::Body;
use futures_util::future::BoxFuture;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub type HttpClient = Client<HttpsConnector<HttpConnector<Resolver>>, Body>;

/// Resolves names with the system resolver, except `localhost` and `*.localhost`, which
/// are loopback (RFC 6761) even where the system resolver does not know them, so that
/// `*.portico.localhost` works out of the box for backends and the CLI; and except the
/// names given fixed addresses (the CLI's way to reach a local gateway by its name).
#[derive(Clone)]
pub struct Resolver {
    system: GaiResolver,
    fixed: Arc<HashMap<String, SocketAddr>>,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        if let Some(addr) = self.fixed.get(&host) {
            let addr = *addr;
            return Box::pin(async move { Ok(vec![addr].into_iter()) });
        }
        if host == "localhost" || host.ends_with(".localhost") {
            let loopback = vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ];
            return Box::pin(async move { Ok(loopback.into_iter()) });
        }
        let lookup = self.system.call(name);
        Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
    }
}

/// Builds a client. TLS trusts the system's roots plus `extra_roots` (PEM certificates,
/// e.g. Portico's development CA).
pub fn build(
    connect_timeout: Duration,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> HttpClient {
    build_with_addresses(connect_timeout, extra_roots, HashMap::new())
}

/// Like [`build`], with fixed addresses for some host names (lower case; the port
/// of the URL always applies).
pub fn build_with_addresses(
    connect_timeout: Duration,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    fixed: HashMap<String, SocketAddr>,
) -> HttpClient {
    let http = tcp_connector(connect_timeout, fixed);
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    for cert in extra_roots {
        let _ = roots.add(cert.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable_tls_config());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(https)
}

/// The TCP connector under both the pooled client and the gateway's own backend
/// connections ([`crate::backend_pool`]): name resolution as [`Resolver`] does it, connect
/// timeout, happy eyeballs, TCP_NODELAY.
pub fn tcp_connector(
    connect_timeout: Duration,
    fixed: HashMap<String, SocketAddr>,
) -> HttpConnector<Resolver> {
    let resolver = Resolver {
        system: GaiResolver::new(),
        fixed: Arc::new(fixed),
    };
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_happy_eyeballs_timeout(Some(Duration::from_millis(300)));
    http
}

/// The ring provider always supports the default protocol versions; this exists only so
/// that the impossible case needs no panic.
fn unreachable_tls_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}
