//! `portico endpoint doctor` as a site's IT department would run it: the real binary against
//! `portico serve` reached directly, through tinyproxy with Basic auth (right and wrong
//! credentials), through mitmproxy intercepting TLS, with the backend down, and the idle
//! probe against a firewall that silently drops flows.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::peers::blackhole::BlackholeProxy;
use support::peers::mitm::InterceptingProxy;
use support::peers::tinyproxy::AuthProxy;
use support::remote::{AgentOptions, Deployment, Side};

const TUNNEL_HOST: &str = "wss.eu1.vpnrts.portico.localhost";
const TOKEN_HOST: &str = "connectivity.eu1.vpnrts.portico.localhost";

/// `portico --config CONFIG endpoint doctor ARGS`: success, and stdout with stderr.
fn doctor(d: &Deployment, config: &Path, args: &[&str]) -> (bool, String) {
    let out = d.agent_command(config, &[&["endpoint", "doctor"][..], args].concat());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn lines_starting<'a>(said: &'a str, word: &str) -> Vec<&'a str> {
    said.lines().filter(|l| l.starts_with(word)).collect()
}

#[test]
fn a_backend_reached_directly_passes_every_check() {
    let d = Deployment::start();
    let config = d.write_agent_config("ep-direct", Side::Device, &AgentOptions::default());
    let (ok, said) = doctor(&d, &config, &[]);
    eprintln!("{said}");
    assert!(ok, "{said}");
    assert!(lines_starting(&said, "FAIL").is_empty(), "{said}");
    let port = d.portico.tls;
    for expected in [
        format!("ok    dns {TUNNEL_HOST}: "),
        format!("ok    tcp {TUNNEL_HOST}:{port}: connected to 127.0.0.1:{port}"),
        format!("ok    tls {TUNNEL_HOST}: verified, not intercepted; the name matches"),
        format!("ok    websocket wss://{TUNNEL_HOST}:{port}/ccf/: the relay answered 401"),
        format!("ok    dns {TOKEN_HOST}: "),
        format!("ok    tls {TOKEN_HOST}: verified"),
        format!("  https://{TOKEN_HOST}:{port}/uaa/oauth/token"),
        format!("  wss://{TUNNEL_HOST}:{port}/mts/"),
        format!("destination port {port}, protocol WebSocket Secure (WSS)"),
        "direct, no proxy".to_string(),
        "result: the tunnel can work from here".to_string(),
    ] {
        assert!(said.contains(&expected), "missing `{expected}` in:\n{said}");
    }
    // The certificate's details are shown.
    let tls = lines_starting(&said, &format!("ok    tls {TUNNEL_HOST}"))[0];
    assert!(
        tls.contains("subject CN=") && tls.contains(", issuer CN=") && tls.contains("names "),
        "{tls}"
    );
    assert!(tls.contains(", valid 1975-01-01 to 4096-01-01"), "{tls}");
}

#[test]
fn through_tinyproxy_the_proxy_is_named_and_wrong_credentials_are_explained() {
    let Some(proxy) = AuthProxy::start("agent", "s3cret-proxy") else {
        return;
    };
    let d = Deployment::start();
    let right = AgentOptions {
        proxy: Some(proxy.url()),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-proxied", Side::Device, &right);
    let (ok, said) = doctor(&d, &config, &[]);
    assert!(ok, "{said}");
    assert!(lines_starting(&said, "FAIL").is_empty(), "{said}");
    assert!(
        said.contains("through proxy http://agent:********@127.0.0.1:"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "CONNECT {TUNNEL_HOST}:{}: tunnel opened (Basic auth as user \"agent\")",
            d.portico.tls
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("ok    websocket wss://{TUNNEL_HOST}")),
        "{said}"
    );
    assert!(
        !said.contains("s3cret-proxy"),
        "the proxy password leaked:\n{said}"
    );
    assert!(
        proxy.log().contains(TUNNEL_HOST),
        "tinyproxy relayed the checks"
    );

    let wrong = AgentOptions {
        proxy: Some(proxy.url_with("agent", "not-the-password")),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-wrong", Side::Device, &wrong);
    let (ok, said) = doctor(&d, &config, &[]);
    eprintln!("{said}");
    assert!(!ok, "{said}");
    let failed = lines_starting(&said, "FAIL");
    assert!(!failed.is_empty(), "{said}");
    assert!(
        failed[0].contains("the proxy refused the credentials of user \"agent\"")
            && (failed[0].contains("401") || failed[0].contains("407")),
        "{said}"
    );
    assert!(
        said.contains("fix: the proxy user or password in the configuration is wrong"),
        "{said}"
    );
    assert!(said.contains("something blocks the tunnel"), "{said}");
    assert!(
        !said.contains("not-the-password"),
        "the proxy password leaked:\n{said}"
    );

    // No credentials at all: the proxy asks for them.
    let anonymous = AgentOptions {
        proxy: Some(proxy.url().replace("agent:s3cret-proxy@", "")),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-anonymous", Side::Device, &anonymous);
    let (ok, said) = doctor(&d, &config, &[]);
    assert!(!ok, "{said}");
    assert!(said.contains("the proxy wants credentials"), "{said}");
    assert!(
        said.contains("fix: ask IT for a proxy user and password"),
        "{said}"
    );
}

#[test]
fn a_tls_intercepting_proxy_is_named_with_its_issuer() {
    let Some(mitm) = InterceptingProxy::start() else {
        return;
    };
    let d = Deployment::start();
    let options = AgentOptions {
        proxy: Some(mitm.url()),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-mitm", Side::Device, &options);
    let (ok, said) = doctor(&d, &config, &[]);
    eprintln!("{said}");
    assert!(!ok, "{said}");
    let tls = lines_starting(&said, &format!("FAIL  tls {TUNNEL_HOST}"));
    assert_eq!(tls.len(), 1, "{said}");
    assert!(tls[0].contains("INTERCEPTED"), "{said}");
    assert!(tls[0].contains("issued by \"CN=mitmproxy"), "{said}");
    assert!(
        said.contains(&format!(
            "ask IT to exempt {TUNNEL_HOST} from TLS inspection"
        )),
        "{said}"
    );
    // The proxy itself let the CONNECT through.
    assert!(
        said.contains("tunnel opened (no proxy credentials used)"),
        "{said}"
    );
}

#[test]
fn a_backend_that_is_down_is_reported_as_refused_tcp() {
    let mut d = Deployment::start();
    let config = d.write_agent_config("ep-down", Side::Device, &AgentOptions::default());
    d.portico.terminate();
    assert!(d.portico.wait_exit(Duration::from_secs(30)).is_some());
    let (ok, said) = doctor(&d, &config, &[]);
    eprintln!("{said}");
    assert!(!ok, "{said}");
    let port = d.portico.tls;
    assert!(said.contains(&format!("ok    dns {TUNNEL_HOST}")), "{said}");
    let tcp = lines_starting(&said, &format!("FAIL  tcp {TUNNEL_HOST}:{port}"));
    assert_eq!(tcp.len(), 1, "{said}");
    assert!(
        tcp[0].contains("127.0.0.1:") && tcp[0].contains("connection refused"),
        "{said}"
    );
    assert!(
        said.contains(&format!("fix: allow outbound TCP {port} to {TUNNEL_HOST}")),
        "{said}"
    );
    assert!(
        !said.contains("websocket"),
        "no later step after TCP failed:\n{said}"
    );
    // The allow-list is printed all the same: it is what IT needs.
    assert!(
        said.contains(&format!("  wss://{TUNNEL_HOST}:{port}/ccf/")),
        "{said}"
    );
}

#[test]
fn the_idle_probe_detects_a_firewall_silently_dropping_idle_connections() {
    let d = Deployment::start();
    let firewall = BlackholeProxy::connect();
    let options = AgentOptions {
        proxy: Some(firewall.url()),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-idle", Side::Device, &options);
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--config")
        .arg(&config)
        .args(["endpoint", "doctor", "--idle", "4s"])
        .env_remove("PORTICO_CONFIG")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // Once the probe's connections are open, the firewall forgets them without a word.
    let start = Instant::now();
    let mut said = String::new();
    let mut silenced = 0;
    while start.elapsed() < Duration::from_secs(60) {
        match seen.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                if line.starts_with("idle probe:") {
                    silenced = firewall.blackhole();
                }
                said.push_str(&line);
                said.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Bounded: a probe still running after the loop is ended here and fails below.
    let _ = child.kill();
    let status = child.wait().unwrap();
    eprintln!("{said}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the probe ran too long:\n{said}"
    );
    assert!(
        silenced >= 4,
        "the probe's connections were open: {silenced}\n{said}"
    );
    assert!(!status.success(), "{said}");
    assert!(said.contains("idle probe: 4 connections to"), "{said}");
    // The shortest period (500 ms) may have run out before the firewall forgot the
    // connections on a slow machine; the longest cannot have.
    assert!(said.contains("idle 4 s: silently dropped"), "{said}");
    let verdict = lines_starting(&said, "FAIL  idle connections");
    assert_eq!(verdict.len(), 1, "{said}");
    assert!(verdict[0].contains("was silently dropped"), "{said}");
    assert!(said.contains("keep_alive_secs = 1"), "{said}");
}
