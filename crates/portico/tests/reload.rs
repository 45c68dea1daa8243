//! Reloads while running: the TLS certificate files are watched and swapped (OPS-5), and
//! SIGHUP re-reads the configuration file (OPS-4); broken files change nothing and the
//! log says why.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use rustls::pki_types::{CertificateDer, ServerName};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use support::*;

const DEMO_HOST: &str = "demo-hello.eu1.portico.localhost";

/// A CA and a certificate it signed for the served names.
struct Issued {
    ca: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    leaf: Vec<u8>,
}

fn issue(name: &str) -> Issued {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["*.eu1.portico.localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    Issued {
        ca: ca.der().clone(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
        leaf: leaf.der().to_vec(),
    }
}

/// The leaf certificate a new TLS connection to `port` is shown, trusting only `ca`.
fn leaf_seen(port: u16, ca: &CertificateDer<'static>) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(DEMO_HOST).unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    let leaf = tls
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .ok_or("no certificate shown")?;
    tls.send_close_notify();
    let _ = tls.complete_io(&mut tcp);
    Ok(leaf)
}

fn replace(path: &std::path::Path, text: &str) {
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

/// Writes `template` as the running instance's `portico.toml`, `{tls}`, `{plain}` and
/// `{admin}` standing for the ports it listens on.
fn rewrite_config(portico: &Portico, template: &str) {
    let text = template
        .replace("{tls}", &portico.tls.to_string())
        .replace("{plain}", &portico.plain.to_string())
        .replace("{admin}", &portico.admin.to_string());
    replace(&portico.path("portico.toml"), &text);
}

const TLS_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"

[tls]
cert = "cert.pem"
key = "key.pem"
"#;

#[test]
fn certificate_files_are_swapped_without_a_restart_and_broken_ones_are_refused() {
    let first = issue("first");
    let portico = Portico::start(
        TLS_CONFIG,
        &[("cert.pem", &first.cert_pem), ("key.pem", &first.key_pem)],
    );
    assert_eq!(leaf_seen(portico.tls, &first.ca).unwrap(), first.leaf);

    // A new certificate and key, written one after the other as a renewal tool does.
    let second = issue("second");
    replace(&portico.path("cert.pem"), &second.cert_pem);
    replace(&portico.path("key.pem"), &second.key_pem);
    let swapped = within(Duration::from_secs(10), || {
        leaf_seen(portico.tls, &second.ca).ok() == Some(second.leaf.clone())
    });
    assert!(
        swapped.is_some(),
        "the new certificate is not served: {}",
        portico.stderr()
    );
    assert!(portico.stderr().contains("TLS certificate reloaded"));
    // Only the new CA's certificate is shown now.
    assert!(leaf_seen(portico.tls, &first.ca).is_err());

    // A file cut short, then one that is no certificate at all: each logged with the
    // reason, and the second certificate stays.
    replace(&portico.path("cert.pem"), &second.cert_pem[..40]);
    let logged = within(Duration::from_secs(10), || {
        portico.stderr().contains("cert.pem is not valid PEM")
    });
    assert!(logged.is_some(), "{}", portico.stderr());
    replace(&portico.path("cert.pem"), "no certificate here\n");
    let logged = within(Duration::from_secs(10), || {
        portico
            .stderr()
            .contains("cert.pem holds no PEM certificate")
    });
    assert!(logged.is_some(), "{}", portico.stderr());
    assert!(portico.stderr().contains("the one in use stays"));
    assert_eq!(leaf_seen(portico.tls, &second.ca).unwrap(), second.leaf);

    // A valid certificate that the key in place does not belong to: refused too.
    replace(&portico.path("cert.pem"), &first.cert_pem);
    let logged = within(Duration::from_secs(10), || {
        portico
            .stderr()
            .contains("does not belong to the certificate")
    });
    assert!(logged.is_some(), "{}", portico.stderr());
    assert_eq!(leaf_seen(portico.tls, &second.ca).unwrap(), second.leaf);
    // And plain HTTP was served all along.
    let (status, _) = curl(&[&portico.plain_url(DEMO_HOST, "/")]);
    assert_eq!(status, 200);
}

/// The configuration with `max_header_size`; line 6 is the limit.
fn limits_config(max_header_size: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{{tls}}\"\nlisten_plain = \"127.0.0.1:{{plain}}\"\nadmin_listen = \"127.0.0.1:{{admin}}\"\n[limits]\nmax_header_size = {max_header_size}\n"
    )
}

/// The status of a demo page request carrying a header of `size` bytes.
fn with_header(portico: &Portico, size: usize) -> u16 {
    let header = format!("X-Big: {}", "b".repeat(size));
    curl(&["-H", &header, &portico.plain_url(DEMO_HOST, "/")]).0
}

#[test]
fn sighup_applies_new_limits_and_a_broken_file_changes_nothing() {
    let mut config = limits_config("\"16kB\"");
    let portico = Portico::start(&config, &[]);
    assert_eq!(with_header(&portico, 5_000), 200);

    // A 4 kB limit, and a key that needs a restart.
    config = limits_config("\"4kB\"");
    config.push_str("[log]\nformat = \"json\"\n");
    rewrite_config(&portico, &config);
    portico.signal("HUP");
    let applied = within(Duration::from_secs(10), || {
        with_header(&portico, 5_000) == 431
    });
    assert!(applied.is_some(), "{}", portico.stderr());
    assert_eq!(with_header(&portico, 1_000), 200);
    let log = portico.stderr();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("log.format changed and needs a restart"),
        "{log}"
    );
    // Not applied: the log is still text, not JSON.
    assert!(!log.lines().any(|l| l.starts_with('{')), "{log}");

    // A broken file: the log names its line, and the 4 kB limit stays.
    rewrite_config(&portico, &limits_config("\"lots\""));
    portico.signal("HUP");
    let logged = within(Duration::from_secs(10), || {
        portico.stderr().contains("configuration not reloaded")
    });
    assert!(logged.is_some(), "{}", portico.stderr());
    let log = portico.stderr();
    assert!(log.contains("limits.max_header_size"), "{log}");
    rewrite_config(&portico, &limits_config("16kB"));
    portico.signal("HUP");
    let logged = within(Duration::from_secs(10), || {
        portico.stderr().contains("portico.toml:6")
    });
    assert!(logged.is_some(), "{}", portico.stderr());
    assert_eq!(with_header(&portico, 5_000), 431);
    assert_eq!(with_header(&portico, 1_000), 200);
}

/// `[notifications]` needs a restart, so a new `limits.idle_timeout` is held to the running
/// notification timing: one that would cut held polls as idle is refused, with everything
/// else in the file, even when the file's own `[notifications]` would fit it.
#[test]
fn sighup_refuses_an_idle_timeout_the_running_notifications_do_not_fit() {
    let config = limits_config("\"16kB\"");
    let portico = Portico::start(&config, &[]);
    let shorter = limits_config("\"4kB\"")
        + "idle_timeout = \"40s\"\n[notifications]\nconnect_timeout = \"20s\"\nmax_connect_timeout = \"30s\"\n";
    rewrite_config(&portico, &shorter);
    portico.signal("HUP");
    let logged = within(Duration::from_secs(10), || {
        portico.stderr().contains("configuration not reloaded")
    });
    assert!(logged.is_some(), "{}", portico.stderr());
    let log = portico.stderr();
    assert!(
        log.contains("notifications.max_connect_timeout (50s) must be shorter than limits.idle_timeout (40s)"),
        "{log}"
    );
    // Nothing of the file was applied: the 16 kB header limit stays.
    assert_eq!(with_header(&portico, 5_000), 200);
}

/// An HTTPS backend whose certificate comes from a private CA is refused, with a message
/// that says so, until `proxy.backend_ca_file` names that CA; SIGHUP applies the file.
#[test]
fn sighup_applies_a_new_backend_ca_file() {
    let backend = support::peers::tls_server::TlsServer::start();
    let config = "[server]\nlisten = \"127.0.0.1:{tls}\"\nlisten_plain = \"127.0.0.1:{plain}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nregistry = \"./registry.toml\"\n";
    let registry = format!(
        "[[tenants]]\nname = \"abc\"\n\n[[webapps]]\nname = \"billing\"\nbackend = \"https://127.0.0.1:{}\"\ntenants = [\"abc\"]\nauth = \"none\"\n",
        backend.addr.port()
    );
    let portico = Portico::start(config, &[("registry.toml", &registry)]);
    let url = portico.plain_url("abc-billing.eu1.portico.localhost", "/invoices");
    let (status, body) = curl(&[&url]);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("The backend's TLS certificate is not trusted"),
        "{body}"
    );

    let trusting = format!(
        "{config}[proxy]\nbackend_ca_file = \"{}\"\n",
        backend.ca_cert().display()
    );
    rewrite_config(&portico, &trusting);
    portico.signal("HUP");
    let applied = within(Duration::from_secs(10), || {
        curl(&[&url]) == (200, "tls-backend /invoices".to_string())
    });
    assert!(applied.is_some(), "{}", portico.stderr());
}
