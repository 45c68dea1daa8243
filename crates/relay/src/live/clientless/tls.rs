//! TLS to a device's own web server (`https` applications) without certificate
//! verification. Device web servers (PLCs, HMIs, routers) nearly always present
//! self-signed certificates for names or addresses no CA vouches for, and Portico has no
//! per-device trust store to check them against. The path that matters is authenticated
//! already: the browser reaches Portico over Portico's own TLS, and Portico reaches the
//! device's site over the endpoint's authenticated tunnel; this last hop runs from the
//! Device Endpoint to a host on the device's own network, dialled only because the
//! application names it. The handshake's signatures are still checked (the server holds
//! the key of the certificate it shows), so the bytes are encrypted on that hop as the
//! device intends.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

/// Accepts any certificate; checks the handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyDeviceCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyDeviceCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector for device web servers, made once.
pub fn device_connector() -> Result<TlsConnector, rustls::Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(TlsConnector::from(config.clone()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyDeviceCertificate(provider)))
        .with_no_client_auth();
    // HTTP/1.1 only: the proxy speaks it to the device, WebSocket upgrades included.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = CONFIG.get_or_init(|| Arc::new(config));
    Ok(TlsConnector::from(config.clone()))
}

/// The name sent in SNI and checked by nobody: the mapping's host, a DNS name or an address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("\"{host}\" is neither a host name nor an address"))
}
