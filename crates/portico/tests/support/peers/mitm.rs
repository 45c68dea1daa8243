//! A real TLS-intercepting proxy: `mitmdump` (mitmproxy) in regular proxy mode with a CA
//! of its own, made fresh in a temporary folder. It answers `CONNECT`, then presents a
//! certificate for the target that its CA issued: a client that verifies against the
//! system roots or its own CA must refuse it.
//!
//! mitmproxy comes from PyPI into a virtualenv that `scripts/test` creates once at
//! `target/peers/mitmproxy-venv`; `PORTICO_MITMDUMP` may name another `mitmdump`.

use super::{missing, port_taken, program, Place, Process};
use crate::support::free_port;
use std::path::PathBuf;

const HINT: &str = "scripts/test creates target/peers/mitmproxy-venv with pip install mitmproxy";

pub struct InterceptingProxy {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub place: Place,
    process: Process,
}

/// Where the virtualenv's `mitmdump` lives, for this workspace.
fn venv_mitmdump() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join("target/peers/mitmproxy-venv/bin/mitmdump")
}

impl InterceptingProxy {
    /// An intercepting proxy on a free loopback port.
    pub fn start() -> Option<InterceptingProxy> {
        Self::start_in(Place::loopback())
    }

    pub fn start_in(place: Place) -> Option<InterceptingProxy> {
        let venv = venv_mitmdump();
        let mitmdump = match std::env::var_os("PORTICO_MITMDUMP") {
            Some(path) if PathBuf::from(&path).is_file() => PathBuf::from(path),
            Some(path) => {
                missing(&format!(
                    "PORTICO_MITMDUMP names {path:?}, which is missing"
                ));
                return None;
            }
            None if venv.is_file() => venv,
            None => program("mitmdump", &[], HINT)?,
        };
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut command = place.command(&mitmdump);
            command
                .args(["--mode", "regular", "--listen-host"])
                .arg(place.bind.to_string())
                .arg("--listen-port")
                .arg(port.to_string())
                .arg("--set")
                .arg(format!("confdir={}", dir.path().display()))
                // The test servers behind it have self-signed certificates; what matters
                // is the certificate mitmproxy shows its client.
                .arg("--ssl-insecure");
            let log = dir.path().join("mitmdump.log");
            let mut process = Process::spawn("mitmdump", command, &log);
            match process.wait_accepts(&place, port) {
                Ok(()) => {
                    return Some(InterceptingProxy {
                        dir,
                        port,
                        place,
                        process,
                    })
                }
                Err(log) if port_taken(&log) => last = log,
                Err(log) => panic!("{log}"),
            }
        }
        missing(&format!("mitmdump found no free port: {last}"));
        None
    }

    /// `http://127.0.0.1:port`, for curl's `-x` or `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that issues the certificates mitmproxy presents.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("mitmproxy-ca-cert.pem")
    }

    /// What mitmdump logged: the flows it intercepted.
    pub fn log(&self) -> String {
        self.process.output()
    }
}
