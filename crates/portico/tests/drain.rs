//! Graceful drain on SIGTERM (GW-24): no new connections, requests in flight finish
//! within `server.drain_timeout`, what is left at the deadline is cut, and Portico exits 0.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::net::TcpStream;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;
use support::*;

const CHUNK: u64 = 64 * 1024;

fn config(drain_timeout: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{{tls}}"
listen_plain = "127.0.0.1:{{plain}}"
admin_listen = "127.0.0.1:{{admin}}"
registry = "registry.toml"
drain_timeout = "{drain_timeout}"
"#
    )
}

fn registry(backend: std::net::SocketAddr) -> String {
    format!(
        "[[tenants]]\nname = \"abc\"\n\n[[webapps]]\nname = \"slow\"\nbackend = \"http://{backend}\"\ntenants = [\"abc\"]\nauth = \"none\"\n"
    )
}

/// Starts a download of the backend's `/download` into `out`; the thread returns curl's
/// `status bytes` and its exit code.
fn download(portico: &Portico, out: std::path::PathBuf) -> JoinHandle<(String, Option<i32>)> {
    let url = portico.plain_url("abc-slow.eu1.portico.localhost", "/download");
    std::thread::spawn(move || {
        let result = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "60",
                "-w",
                "%{http_code} %{size_download}",
            ])
            .arg("-o")
            .arg(&out)
            .arg(url)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&result.stdout).to_string(),
            result.status.code(),
        )
    })
}

/// Waits until the download has written its first bytes.
fn wait_started(out: &std::path::Path) {
    let started = within(Duration::from_secs(10), || {
        std::fs::metadata(out).is_ok_and(|m| m.len() > 0)
    });
    assert!(started.is_some(), "the download did not start");
}

fn refused(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn sigterm_lets_a_download_in_flight_finish_and_refuses_new_connections() {
    let chunks = 150; // 9.8 MB over about 4.5 s
    let backend = backend("slow", chunks);
    let mut portico = Portico::start(&config("30s"), &[("registry.toml", &registry(backend))]);
    let readyz = format!("http://127.0.0.1:{}/readyz", portico.admin);
    assert_eq!(curl(&[&readyz]), (200, "ready\n".to_string()));
    let out = portico.path("download.bin");
    let transfer = download(&portico, out.clone());
    wait_started(&out);

    portico.signal("TERM");
    let closed = within(Duration::from_secs(3), || {
        refused(portico.plain) && refused(portico.tls)
    });
    assert!(closed.is_some(), "the listeners still accept connections");
    // The operators' listener stays, and tells a load balancer the node is going.
    assert_eq!(curl(&[&readyz]), (404, "not ready: draining\n".to_string()));
    assert!(
        !transfer.is_finished(),
        "the download ended before the listeners closed; the test proves nothing"
    );

    let (result, code) = transfer.join().unwrap();
    assert_eq!(result, format!("200 {}", chunks as u64 * CHUNK));
    assert_eq!(code, Some(0));
    let status = portico.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        portico.stderr()
    );
}

#[test]
fn a_request_slower_than_the_drain_deadline_is_cut_and_portico_still_exits_0() {
    let chunks = 400; // about 12 s
    let backend = backend("slow", chunks);
    let mut portico = Portico::start(&config("1s"), &[("registry.toml", &registry(backend))]);
    let out = portico.path("download.bin");
    let transfer = download(&portico, out.clone());
    wait_started(&out);

    portico.signal("TERM");
    let status = portico.wait_exit(Duration::from_secs(8));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        portico.stderr()
    );
    assert!(portico.stderr().contains("drain deadline passed"));
    let (result, code) = transfer.join().unwrap();
    assert_ne!(
        result,
        format!("200 {}", chunks as u64 * CHUNK),
        "the download was not cut"
    );
    assert_ne!(code, Some(0), "curl saw the transfer cut: {result}");
}
