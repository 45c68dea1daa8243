//! TLS for the listener (OPS-5): certificates from PEM files, or a development
//! certificate generated on first start, signed by a development CA whose certificate is
//! written beside it for clients to trust. The certificate is served through a resolver,
//! so that it can be replaced while running ([`crate::cert_reload`]).

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid PEM: {source}")]
    Pem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate and key are not usable: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The protocols offered by ALPN, preferred first: HTTP/2, then HTTP/1.1.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A server config for TLS 1.2 and 1.3 with ALPN `h2` and `http/1.1`, serving the
/// certificate `resolver` gives.
pub fn server_config_with(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A server config with one fixed certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider)?;
    let resolver = rustls::sign::SingleCertAndKey::from(Arc::new(key));
    server_config_with(Arc::new(resolver))
}

/// Reads a certificate chain and its private key from PEM files and checks that they
/// belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let private_key = load_key(key)?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private_key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert: cert.into(),
                key: key.into(),
            }
        }
        other => TlsError::Rustls(other),
    })
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Pem {
            path: path.into(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey { path: path.into() })
}

/// The files of a development certificate.
#[derive(Debug, Clone)]
pub struct DevCert {
    /// The CA certificate clients trust (`curl --cacert`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevCert {
    /// The files Portico generates in its data folder when no `[tls]` is configured.
    pub fn in_dir(dir: &Path) -> DevCert {
        DevCert {
            ca: dir.join("dev-ca.pem"),
            cert: dir.join("dev-cert.pem"),
            key: dir.join("dev-key.pem"),
        }
    }

    /// A certificate at configured paths, with its CA in the certificate's folder.
    pub fn at(cert: &Path, key: &Path) -> DevCert {
        DevCert {
            ca: cert.with_file_name("dev-ca.pem"),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }
    }

    fn ca_key(&self) -> PathBuf {
        self.ca.with_file_name("dev-ca-key.pem")
    }

    /// Records the names the certificate was made for.
    fn names_file(&self) -> PathBuf {
        let mut name = self.cert.clone().into_os_string();
        name.push(".names");
        PathBuf::from(name)
    }
}

/// The names a development certificate covers for these domains and regions (GW-1..GW-6).
pub fn dev_cert_names(domains: &[String], regions: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for domain in domains {
        for region in regions {
            names.push(format!("*.{region}.{domain}"));
            names.push(format!("*.{region}.vpnrts.{domain}"));
        }
    }
    names
}

/// Makes sure `files` hold a development CA and a certificate for `names`. The CA is made
/// once and kept, so a browser or system that trusts it keeps trusting the certificates
/// made later; the certificate is made again when the names change.
pub fn ensure_dev_cert(files: &DevCert, names: &[String]) -> Result<(), TlsError> {
    let names_path = files.names_file();
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&names_path).ok();
    if current.as_deref() == Some(wanted.as_str())
        && files.cert.exists()
        && files.key.exists()
        && files.ca.exists()
    {
        return Ok(());
    }

    let ca_key_path = files.ca_key();
    let ca_key = match std::fs::read_to_string(&ca_key_path) {
        Ok(pem) if files.ca.exists() => rcgen::KeyPair::from_pem(&pem)?,
        _ => rcgen::KeyPair::generate()?,
    };
    let ca_cert = ca_params()?.self_signed(&ca_key)?;
    if !files.ca.exists() || !ca_key_path.exists() {
        write(&ca_key_path, &ca_key.serialize_pem(), true)?;
        write(&files.ca, &ca_cert.pem(), false)?;
    }

    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portico development certificate");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    write(&files.key, &key.serialize_pem(), true)?;
    write(&files.cert, &cert.pem(), false)?;
    write(&names_path, &wanted, false)?;
    Ok(())
}

fn ca_params() -> Result<rcgen::CertificateParams, TlsError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portico development CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    let fail = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, contents).map_err(fail)?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_cert_is_made_once_and_remade_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let names = dev_cert_names(&["portico.localhost".into()], &["eu1".into()]);
        assert!(names.contains(&"*.eu1.portico.localhost".to_string()));
        assert!(names.contains(&"*.eu1.vpnrts.portico.localhost".to_string()));
        let files = DevCert::in_dir(dir.path());
        ensure_dev_cert(&files, &names).unwrap();
        let ca_before = std::fs::read(&files.ca).unwrap();
        let cert_before = std::fs::read(&files.cert).unwrap();
        ensure_dev_cert(&files, &names).unwrap();
        assert_eq!(std::fs::read(&files.cert).unwrap(), cert_before);

        let more = dev_cert_names(&["portico.localhost".into()], &["eu1".into(), "eu2".into()]);
        ensure_dev_cert(&files, &more).unwrap();
        assert_ne!(std::fs::read(&files.cert).unwrap(), cert_before);
        assert_eq!(std::fs::read(&files.ca).unwrap(), ca_before);
        let config = server_config(
            load_certs(&files.cert).unwrap(),
            load_key(&files.key).unwrap(),
        );
        assert!(config.is_ok());
    }
}
