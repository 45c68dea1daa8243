//! The real peers of the Remote Services end-to-end tests each do what those tests rely
//! on: the SSH server runs commands and takes a 100 MB file intact, tinyproxy relays
//! CONNECT with the right password only, mitmproxy forges certificates from its own CA,
//! the blackhole proxy goes silent on command, the namespaces fence the factory from the
//! service network, and the ticket server records what is posted.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::peers::blackhole::BlackholeProxy;
use support::peers::mitm::InterceptingProxy;
use support::peers::netns::{self, Topology};
use support::peers::ssh::SshServer;
use support::peers::ticket::{Ticket, TicketServer};
use support::peers::tinyproxy::AuthProxy;
use support::peers::tls_server::TlsServer;
use support::peers::{sha256sum, write_random_file, Place};

/// curl with no proxy settings from the environment, so each test says its own.
fn curl() -> Command {
    let mut command = Command::new("curl");
    for name in [
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    command.args(["-s", "--max-time", "20"]);
    command
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn ssh_server_runs_commands_and_takes_a_100_mb_file_intact() {
    let Some(server) = SshServer::start() else {
        return;
    };
    let out = server.run_via(
        "127.0.0.1",
        server.port,
        "echo hello-$((6*7)) from $(id -un)",
    );
    succeeded(&out, "ssh");
    assert_eq!(
        text(&out.stdout).trim(),
        format!("hello-42 from {}", server.user)
    );

    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    write_random_file(&file, 100 * 1024 * 1024, 7);
    let remote = server.path("copy.bin");
    let out = server.pipe_file_via("127.0.0.1", server.port, &file, &remote);
    succeeded(&out, "ssh 'cat > copy.bin'");
    let sent = sha256sum(&file);
    assert_eq!(sent.len(), 64);
    assert_eq!(
        server.remote_sha256_via("127.0.0.1", server.port, &remote),
        sent
    );
    assert_eq!(std::fs::metadata(&remote).unwrap().len(), 100 * 1024 * 1024);

    let small = local.path().join("small.txt");
    std::fs::write(&small, "over scp\n").unwrap();
    let copied = server.path("small.txt");
    succeeded(
        &server.scp_via("127.0.0.1", server.port, &small, &copied),
        "scp",
    );
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "over scp\n");
}

#[test]
fn ssh_server_refuses_a_key_it_was_not_given() {
    let Some(server) = SshServer::start() else {
        return;
    };
    let stranger = tempfile::tempdir().unwrap();
    let key = stranger.path().join("key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    succeeded(&made, "ssh-keygen");
    let out = Command::new("ssh")
        .args(["-p", &server.port.to_string(), "-i"])
        .arg(&key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .arg(format!("{}@127.0.0.1", server.user))
        .arg("true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a stranger's key logged in");
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn auth_proxy_relays_connect_with_the_password_and_refuses_a_wrong_one() {
    let Some(proxy) = AuthProxy::start("agent", "s3cret") else {
        return;
    };
    let plain = support::backend("plain", 0);
    let out = curl()
        .args(["-p", "-x", &proxy.url()])
        .arg(format!("http://{plain}/hello"))
        .output()
        .unwrap();
    succeeded(&out, "curl through tinyproxy");
    assert_eq!(text(&out.stdout), "plain /hello");

    let tls = TlsServer::start();
    let out = curl()
        .args(["-x", &proxy.url(), "--cacert"])
        .arg(tls.ca_cert())
        .arg(tls.url("/secure"))
        .output()
        .unwrap();
    succeeded(&out, "curl https through tinyproxy");
    assert_eq!(text(&out.stdout), "tls-backend /secure");
    assert!(proxy.log().contains("CONNECT"), "{}", proxy.log());

    let out = curl()
        .args(["-o", "/dev/null", "-w", "%{http_connect}", "-p", "-x"])
        .arg(proxy.url_with("agent", "wrong"))
        .arg(format!("http://{plain}/hello"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong password got through");
    let code = text(&out.stdout);
    assert!(code == "401" || code == "407", "CONNECT answered {code}");
}

#[test]
fn intercepting_proxy_presents_certificates_from_its_own_ca() {
    let Some(proxy) = InterceptingProxy::start() else {
        return;
    };
    let server = TlsServer::start();
    // Without the proxy the server's own CA verifies it.
    let out = curl()
        .arg("--cacert")
        .arg(server.ca_cert())
        .arg(server.url("/direct"))
        .output()
        .unwrap();
    succeeded(&out, "curl direct");
    assert_eq!(text(&out.stdout), "tls-backend /direct");

    // Through the proxy the server's CA no longer verifies what is shown: curl says 60.
    let out = curl()
        .args(["-x", &proxy.url(), "--cacert"])
        .arg(server.ca_cert())
        .arg(server.url("/intercepted"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60), "{}", text(&out.stderr));

    // mitmproxy's CA does verify it, and it is the issuer.
    let out = curl()
        .args(["-v", "-x", &proxy.url(), "--cacert"])
        .arg(proxy.ca_cert())
        .arg(server.url("/intercepted"))
        .output()
        .unwrap();
    succeeded(&out, "curl trusting mitmproxy's CA");
    assert_eq!(text(&out.stdout), "tls-backend /intercepted");
    let verbose = text(&out.stderr);
    assert!(verbose.contains("issuer: CN=mitmproxy"), "{verbose}");
}

/// An echo server on loopback that counts the bytes it received.
fn echo_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    // Counted before the echo, so a client that got its echo sees the count.
                    counter.fetch_add(n, Ordering::SeqCst);
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, received)
}

/// Opens a tunnel to `target` through the blackhole proxy's CONNECT.
fn connect_through(proxy: &BlackholeProxy, target: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 1024 {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "proxy closed");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", text(&head));
    stream
}

fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

#[test]
fn blackhole_proxy_forwards_until_told_then_goes_silent_without_closing() {
    let (target, received) = echo_server();
    let proxy = BlackholeProxy::connect();
    let mut flow = connect_through(&proxy, target);
    assert_eq!(echo(&mut flow, b"ping"), b"ping");
    assert_eq!(received.load(Ordering::SeqCst), 4);

    assert_eq!(proxy.blackhole(), 1);
    flow.write_all(b"lost").unwrap();
    flow.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    // Neither data nor an end (Ok(0)) nor a reset: the read just times out.
    let err = flow.read(&mut buf).expect_err("the black flow answered");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert_eq!(received.load(Ordering::SeqCst), 4, "the server got bytes");
    // Still open from the client's side: writing does not fail.
    flow.write_all(b"still lost").unwrap();

    // A new connection is forwarded again.
    let mut again = connect_through(&proxy, target);
    assert_eq!(echo(&mut again, b"pong"), b"pong");
    assert_eq!(proxy.accepted(), 2);
}

#[test]
fn blackhole_forwarder_goes_silent_too() {
    let (target, received) = echo_server();
    let proxy = BlackholeProxy::forward_to(target);
    // A flow that ends normally is forgotten, and not black-holed later.
    let mut first = TcpStream::connect(proxy.addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(echo(&mut first, b"one"), b"one");
    drop(first);
    assert!(support::within(Duration::from_secs(5), || proxy.open_flows() == 0).is_some());

    let mut flow = TcpStream::connect(proxy.addr).unwrap();
    flow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(echo(&mut flow, b"hello"), b"hello");
    assert_eq!(proxy.blackhole(), 1);
    flow.write_all(b"gone").unwrap();
    flow.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(flow.read(&mut [0u8; 8]).is_err(), "the black flow answered");
    assert_eq!(received.load(Ordering::SeqCst), 3 + 5);
    assert_eq!(proxy.open_flows(), 1);
}

#[test]
fn namespaces_reach_the_backend_but_not_each_other() {
    let topology = match Topology::create() {
        Ok(topology) => topology,
        Err(e) => {
            eprintln!("skipped: network namespaces unavailable: {e}");
            return;
        }
    };
    let Some(backend) = TicketServer::start_in(Place::netns(&topology.backend)) else {
        return;
    };
    let get = |from: &str, ip: &str, port: u16| {
        let url = format!("http://{ip}:{port}/");
        topology.run(from, &["curl", "-s", "--max-time", "3", &url])
    };
    for (from, ip) in [
        (&topology.factory, netns::BACKEND_FACTORY_SIDE_IP),
        (&topology.service, netns::BACKEND_SERVICE_SIDE_IP),
    ] {
        let out = get(from, ip, backend.port);
        succeeded(&out, &format!("curl from {from} to the backend"));
        assert_eq!(text(&out.stdout), "ticket server");
    }

    let Some(service) = TicketServer::start_in(Place::netns(&topology.service)) else {
        return;
    };
    let out = get(&topology.backend, netns::SERVICE_IP, service.port);
    succeeded(&out, "curl from the backend to the service network");
    let out = get(&topology.factory, netns::SERVICE_IP, service.port);
    assert!(
        !out.status.success(),
        "the factory reached the service network: {}",
        text(&out.stdout)
    );
    // Nor does the host see into the namespaces. (Its own default route may lead to
    // something that answers any address, so what matters is who answered.)
    let host = curl()
        .args(["--max-time", "3"])
        .arg(format!("http://{}:{}/", netns::SERVICE_IP, service.port))
        .output()
        .unwrap();
    assert_ne!(
        text(&host.stdout),
        "ticket server",
        "the host reached the service network"
    );

    // An SSH server in the factory, reached from the backend namespace.
    let Some(ssh) = SshServer::start_in(Place::netns(&topology.factory)) else {
        return;
    };
    let out = ssh
        .ssh_from(
            &Place::netns(&topology.backend),
            netns::FACTORY_IP,
            ssh.port,
            "echo factory-$((1+1))",
        )
        .output()
        .unwrap();
    succeeded(&out, "ssh from the backend to the factory");
    assert_eq!(text(&out.stdout).trim(), "factory-2");
}

#[test]
fn ticket_server_records_every_post() {
    let Some(server) = TicketServer::start() else {
        return;
    };
    assert!(server.tickets().is_empty());
    for (n, body) in ["pump 7 failed", "valve 3 stuck"].iter().enumerate() {
        let out = curl()
            .args(["-w", "\n%{http_code}", "-d", body])
            .arg(server.url("/tickets"))
            .output()
            .unwrap();
        succeeded(&out, "curl -d");
        assert_eq!(text(&out.stdout), format!("{{\"ticket\": {}}}\n201", n + 1));
    }
    assert_eq!(
        server.tickets(),
        vec![
            Ticket {
                path: "/tickets".into(),
                body: "pump 7 failed".into()
            },
            Ticket {
                path: "/tickets".into(),
                body: "valve 3 stuck".into()
            },
        ]
    );
}
