//! Peers shared by the agent's tests: a test CA, HTTPS servers, a token endpoint and the
//! agent's configuration files. Loopback only.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming as Body};
use portico_endpoint::{EndpointConfig, ProxyEnvironment};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::http;

pub const TOKEN: &str = "agent-token-1";

pub struct TestPki {
    pub ca_pem: String,
    pub leaf: CertificateDer<'static>,
    pub leaf_key: PrivatePkcs8KeyDer<'static>,
}

pub fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portico Agent Test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        leaf: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

pub fn tls_acceptor(pki: &TestPki) -> tokio_rustls::TlsAcceptor {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![pki.leaf.clone()],
        PrivateKeyDer::Pkcs8(pki.leaf_key.clone_key()),
    )
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A token endpoint granting `TOKEN` to `ep-1`/`s3cr3t`; counts the grants.
pub async fn spawn_token_endpoint(pki: &TestPki) -> (u16, Arc<AtomicUsize>) {
    let grants = Arc::new(AtomicUsize::new(0));
    let counted = grants.clone();
    let port = serve_https(pki, move |req| {
        let counted = counted.clone();
        async move {
            let path_ok = req.uri().path() == "/uaa/oauth/token";
            let form = req.into_body().collect().await.unwrap().to_bytes();
            let form = String::from_utf8_lossy(&form).into_owned();
            if path_ok && form.contains("client_id=ep-1") && form.contains("client_secret=s3cr3t") {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    r#"{{"access_token":"{TOKEN}","token_type":"bearer","expires_in":3600}}"#
                );
                (200, body)
            } else {
                (401, r#"{"error":"invalid_client"}"#.to_string())
            }
        }
    })
    .await;
    (port, grants)
}

/// A small HTTPS server answering every request with `answer` (status, JSON body).
pub async fn serve_https<F, Fut>(pki: &TestPki, answer: F) -> u16
where
    F: Fn(http::Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, String)> + Send,
{
    let acceptor = tls_acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let answer = answer.clone();
            let service = hyper::service::service_fn(move |req| {
                let answer = answer.clone();
                async move {
                    let (status, body) = answer(req).await;
                    Ok::<_, hyper::Error>(
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service),
            );
        }
    });
    port
}

/// Writes the agent's configuration and credentials into `dir`.
pub fn agent_config(
    dir: &Path,
    pki: &TestPki,
    role: &str,
    relay: u16,
    token: u16,
    extra: &str,
) -> EndpointConfig {
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let creds = dir.join("creds.toml");
    std::fs::write(
        &creds,
        format!(
            "client_id = \"ep-1\"\nclient_secret = \"s3cr3t\"\ntenant = \"abc\"\n\
             endpoint = \"{role}-ep\"\nkind = \"{role}\"\n"
        ),
    )
    .unwrap();
    set_private(&creds);
    let config = dir.join("endpoint.toml");
    std::fs::write(
        &config,
        format!(
            "role = \"{role}\"\nbackend = \"https://localhost:{relay}\"\n\
             token_url = \"https://localhost:{token}/uaa/oauth/token\"\n\
             api = \"https://localhost:{relay}\"\ncredentials = \"creds.toml\"\n\
             ca_file = \"ca.pem\"\nproxy = \"direct\"\n{extra}"
        ),
    )
    .unwrap();
    EndpointConfig::load(&config, &ProxyEnvironment::default()).unwrap()
}

pub fn set_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
