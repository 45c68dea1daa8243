//! TLS certificates replaced without a restart (OPS-5). The listener's TLS config asks a
//! [`ReloadingCert`] for the certificate at every handshake; a watcher polls the files'
//! metadata every second and swaps in the new certificate and key once they load and
//! belong together. A file that does not load is logged with the reason, and the
//! certificate in use stays. Connections already open keep the certificate they began
//! with.
//!
//! Polling rather than file-system notifications: it sees files replaced by rename (as
//! certbot and Kubernetes secret mounts do, through symlinks) and files on network
//! mounts alike, at the cost of two `stat` calls a second.

use crate::tls::{load_certified_key, TlsError};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the certificate files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The certificate in use, and the files it comes from.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ReloadingCert {
    /// Loads the certificate and key; at start, a file that does not load is an error.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ReloadingCert>, TlsError> {
        let loaded = load_certified_key(cert, key)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from_pointee(loaded),
        }))
    }

    /// Loads the files again and uses them from the next handshake on; on an error the
    /// certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = load_certified_key(&self.cert, &self.key)?;
        self.current.store(Arc::new(loaded));
        Ok(())
    }

    /// The leaf certificate in use, as DER.
    pub fn leaf(&self) -> Vec<u8> {
        self.current
            .load()
            .cert
            .first()
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    /// Watches the files until `shutdown`, reloading after every change.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut seen = self.fingerprint();
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let now = self.fingerprint();
            if now == seen {
                continue;
            }
            // Each change is tried once: a certificate written before its key fails
            // now and loads when the key's change is seen.
            seen = now;
            match self.reload() {
                Ok(()) => tracing::info!(
                    cert = %self.cert.display(),
                    key = %self.key.display(),
                    "TLS certificate reloaded; new connections use it"
                ),
                Err(e) => tracing::error!(
                    cert = %self.cert.display(),
                    key = %self.key.display(),
                    "TLS certificate not reloaded, the one in use stays: {e}"
                ),
            }
        }
    }

    fn fingerprint(&self) -> [Option<FileStamp>; 2] {
        [FileStamp::of(&self.cert), FileStamp::of(&self.key)]
    }
}

/// What changes when a file is written or replaced. Symlinks are followed, so that a
/// link switched to a new target counts as a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{dev_cert_names, ensure_dev_cert, DevCert};

    #[test]
    fn a_new_pair_is_used_and_a_bad_one_leaves_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevCert::in_dir(&dir.path().join("a"));
        let second = DevCert::in_dir(&dir.path().join("b"));
        let names = dev_cert_names(&["portico.localhost".into()], &["eu1".into()]);
        ensure_dev_cert(&first, &names).unwrap();
        ensure_dev_cert(&second, &names).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::copy(&first.cert, &cert).unwrap();
        std::fs::copy(&first.key, &key).unwrap();
        let reloading = ReloadingCert::load(&cert, &key).unwrap();
        let old = reloading.leaf();

        // The second certificate with the first key: refused, the first stays.
        std::fs::copy(&second.cert, &cert).unwrap();
        let e = reloading.reload().unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert_eq!(reloading.leaf(), old);

        std::fs::copy(&second.key, &key).unwrap();
        reloading.reload().unwrap();
        assert_ne!(reloading.leaf(), old);

        std::fs::write(&cert, "not a certificate").unwrap();
        let e = reloading.reload().unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
