//! TLS to the backend: trusted roots (the system's plus an optional CA file), and a verifier
//! that remembers the certificate it saw and why it rejected it, so the agent can say "intercepted" and name
//! the issuer instead of passing on a bare handshake error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::cert_issuer::issuer_summary;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the CA file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable PEM certificate")]
    EmptyCa { path: PathBuf },
    #[error("no trusted root certificates: the system has none and no CA file is configured")]
    NoRoots,
    #[error("TLS setup failed: {0}")]
    Rustls(String),
}

/// The certificates the backend's chain must end in.
#[derive(Clone)]
pub struct TrustRoots {
    store: Arc<RootCertStore>,
}

impl std::fmt::Debug for TrustRoots {
    // A count, not a dump of a few hundred system roots.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoots")
            .field("certificates", &self.store.len())
            .finish()
    }
}

impl TrustRoots {
    /// The system's roots and, if given, the certificates of a PEM file (a private CA, or the
    /// CA of an inspecting proxy the operator has decided to trust).
    pub fn system_and(ca_file: Option<&Path>) -> Result<Self, TlsSetupError> {
        let mut store = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "skipping unreadable system root certificates");
        }
        store.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            add_pem_file(&mut store, path)?;
        }
        if store.is_empty() {
            return Err(TlsSetupError::NoRoots);
        }
        Ok(TrustRoots {
            store: Arc::new(store),
        })
    }

    /// Only the certificates of one PEM file, ignoring the system's roots.
    pub fn only(ca_file: &Path) -> Result<Self, TlsSetupError> {
        let mut store = RootCertStore::empty();
        add_pem_file(&mut store, ca_file)?;
        Ok(TrustRoots {
            store: Arc::new(store),
        })
    }
}

fn add_pem_file(store: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    let read_error = |source| TlsSetupError::ReadCa {
        path: path.to_path_buf(),
        source,
    };
    let pem = std::fs::read(path).map_err(read_error)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsSetupError::EmptyCa {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Why the backend's certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRejection {
    pub reason: String,
    /// The presented certificate's issuer, when it could be read.
    pub issuer: Option<String>,
}

/// What one handshake's verifier saw: the certificate presented and, when it refused it,
/// why. The agent explains a refusal with it; the network doctor also describes the
/// certificate of a handshake that succeeded.
#[derive(Debug, Default)]
pub(crate) struct HandshakeRecord {
    pub certificate: Option<Vec<u8>>,
    pub refused: Option<rustls::Error>,
}

impl HandshakeRecord {
    /// Why the certificate was refused, with its issuer, when it was.
    pub fn rejection(&self) -> Option<CertificateRejection> {
        let refused = self.refused.as_ref()?;
        Some(CertificateRejection {
            reason: refused.to_string(),
            issuer: self.certificate.as_deref().and_then(issuer_summary),
        })
    }
}

/// Where one handshake's verifier leaves what it saw.
pub(crate) type RecordSlot = Arc<Mutex<HandshakeRecord>>;

/// A client configuration for one connection, whose verifier reports into `slot`.
pub(crate) fn client_config(
    roots: &TrustRoots,
    slot: RecordSlot,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots.store.clone(), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let verifier = Arc::new(RecordingVerifier { inner, slot });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // The WebSocket upgrade is HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The standard WebPKI verification, unchanged; it also notes the certificate and, on
/// refusal, the reason.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    slot: RecordSlot,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let mut record = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        record.certificate = Some(end_entity.to_vec());
        record.refused = verdict.as_ref().err().cloned();
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
