//! An HTTPS server on a free loopback port with a certificate from a CA made for it
//! (for `localhost` and `127.0.0.1`), in a thread of its own: the "real" server behind a
//! proxy, so a test can tell its certificate from one an intercepting proxy forged.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub struct TlsServer {
    pub addr: SocketAddr,
    /// Holds `ca.pem`, the CA that issued the server's certificate.
    pub dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts the server; it answers every request with `tls-backend {path}`.
    pub fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, chain, key) = issue();
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(acceptor, tx));
        });
        TlsServer {
            addr: rx.recv().unwrap(),
            dir,
        }
    }

    /// The CA certificate (PEM) that verifies this server.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `https://localhost:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

async fn serve(acceptor: tokio_rustls::TlsAcceptor, tx: std::sync::mpsc::Sender<SocketAddr>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tx.send(listener.local_addr().unwrap()).unwrap();
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                let text = format!("tls-backend {}", req.uri().path());
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// A CA (PEM) and a leaf chain and key for `localhost` and `127.0.0.1`.
fn issue() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Portico test server CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca.pem(), vec![leaf.der().clone()], key)
}
