//! The TLS handshake with one backend host, verified as the agent verifies it, and reported
//! with the presented certificate's details. A certificate that does not verify is most
//! often a TLS-inspecting proxy's forgery: the check then names its issuer, as registration
//! does.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::ServerName;
use rustls::CertificateError;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::certificate::{self, CertificateDetails};
use super::report::{Check, Sink};
use super::route::STEP_TIMEOUT;
use crate::config::BackendUrl;
use crate::tls::{self, HandshakeRecord, TrustRoots};

/// A verified TLS stream to `url`'s host over `tcp`, or `None` after a failed check.
pub async fn handshake(
    url: &BackendUrl,
    tcp: TcpStream,
    roots: &TrustRoots,
    sink: &mut dyn Sink,
) -> Option<TlsStream<TcpStream>> {
    let host = url.host();
    let what = format!("tls {host}");
    let seen = Arc::new(Mutex::new(HandshakeRecord::default()));
    let config = match tls::client_config(roots, seen.clone()) {
        Ok(config) => config,
        Err(error) => {
            sink.check(Check::fail(
                what,
                error.to_string(),
                "fix the TLS setup (`ca_file`)",
            ));
            return None;
        }
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        sink.check(Check::fail(
            what,
            "the backend host is not a valid TLS server name",
            "correct `backend` in the configuration",
        ));
        return None;
    };
    let result = tokio::time::timeout(STEP_TIMEOUT, TlsConnector::from(config).connect(name, tcp));
    let seen = {
        let outcome = result.await;
        let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
        match outcome {
            Ok(Ok(stream)) => {
                let details = seen.certificate.as_deref().and_then(certificate::read);
                let shown = details.as_ref().map(CertificateDetails::summary);
                sink.check(Check::ok(
                    what,
                    format!(
                        "verified, not intercepted; the name matches; {}",
                        shown.unwrap_or_else(|| "certificate unreadable".into())
                    ),
                ));
                return Some(stream);
            }
            Ok(Err(error)) => (seen, error.to_string()),
            Err(_) => (
                seen,
                format!("no handshake within {} s", STEP_TIMEOUT.as_secs()),
            ),
        }
    };
    sink.check(refusal(host, &what, seen));
    None
}

/// The failed check, explained from what the verifier saw.
fn refusal(host: &str, what: &str, (seen, error): (HandshakeRecord, String)) -> Check {
    let details = seen.certificate.as_deref().and_then(certificate::read);
    let shown = details
        .as_ref()
        .map(CertificateDetails::summary)
        .unwrap_or_else(|| "no certificate seen".into());
    let issuer = details
        .as_ref()
        .and_then(|d| d.issuer.clone())
        .unwrap_or_else(|| "an unreadable issuer".into());
    let exempt = format!(
        "the proxy or firewall intercepts TLS: ask IT to exempt {host} from TLS inspection \
         (or, if that CA is meant to be trusted, name it in `ca_file`)"
    );
    let name_matches = details.as_ref().is_some_and(|d| d.matches(host));
    match seen.refused {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        )) => Check::fail(
            what,
            format!(
                "INTERCEPTED: the certificate is issued by \"{issuer}\", which is not trusted \
                 (a TLS-inspecting proxy); {shown}"
            ),
            exempt,
        ),
        Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
        | Some(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            ..
        })) if !name_matches => Check::fail(
            what,
            format!("the certificate is not valid for {host} (intercepted or the wrong server); {shown}"),
            exempt,
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => Check::fail(
            what,
            format!("the certificate has expired; {shown}"),
            "check this machine's clock; if it is right, the backend's certificate must be renewed",
        ),
        Some(other) => Check::fail(
            what,
            format!("the certificate does not verify ({other}); {shown}"),
            exempt,
        ),
        None => Check::fail(
            what,
            format!("the TLS handshake failed: {error}"),
            format!(
                "ask IT whether something between this machine and {host} blocks or alters \
                 TLS on port 443"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(refused: Option<CertificateError>) -> HandshakeRecord {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Corp Inspection CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["wss.example.com".to_string()]).unwrap();
        HandshakeRecord {
            certificate: Some(leaf.signed_by(&key, &ca, &ca_key).unwrap().der().to_vec()),
            refused: refused.map(rustls::Error::InvalidCertificate),
        }
    }

    fn explain(refused: Option<CertificateError>, host: &str) -> Check {
        refusal(host, "tls x", (seen(refused), "handshake error".into()))
    }

    #[test]
    fn refusals_are_explained() {
        let intercepted = explain(Some(CertificateError::UnknownIssuer), "wss.example.com");
        assert!(intercepted.failed());
        assert!(
            intercepted
                .found
                .contains("INTERCEPTED: the certificate is issued by \"CN=Corp Inspection CA\""),
            "{intercepted}"
        );
        assert!(intercepted
            .fix
            .unwrap()
            .contains("exempt wss.example.com from TLS inspection"));
        let other_name = explain(Some(CertificateError::NotValidForName), "rs.example.com");
        assert!(
            other_name.found.contains("not valid for rs.example.com"),
            "{other_name}"
        );
        let expired = explain(Some(CertificateError::Expired), "wss.example.com");
        assert!(expired.fix.unwrap().contains("clock"));
        let cut = explain(None, "wss.example.com");
        assert!(
            cut.found
                .contains("the TLS handshake failed: handshake error"),
            "{cut}"
        );
    }
}
