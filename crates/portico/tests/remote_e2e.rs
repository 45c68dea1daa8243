//! Remote Services end to end, with real peers (RS-4, RS-5, RS-7, RS-8, RS-9): `portico
//! serve` as the backend, a Device Endpoint and a Service Endpoint as `portico endpoint run`
//! processes, a real OpenSSH server behind the device side and the real `ssh` client on the
//! service side, real HTTP proxies (tinyproxy with Basic auth, mitmproxy intercepting TLS)
//! between the agents and the backend, and faults: `serve` killed and restarted, a tunnel
//! silently blackholed, a session timing out, an endpoint revoked.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::peers::blackhole::BlackholeProxy;
use support::peers::mitm::InterceptingProxy;
use support::peers::ssh::SshServer;
use support::peers::ticket::TicketServer;
use support::peers::tinyproxy::AuthProxy;
use support::peers::{sha256sum, write_random_file};
use support::remote::{local_port, AgentOptions, Deployment, Side};
use support::{unix_ms, within};

const HUNDRED_MB: u64 = 100 * 1024 * 1024;

/// A Deployment with a Device and a Service Endpoint registered with `options` and an SSH
/// application (`ssh-press`, local port → the SSH server) assigned to the device.
struct SshSetup {
    deployment: Deployment,
    device: std::path::PathBuf,
    service: std::path::PathBuf,
    local: u16,
}

fn ssh_setup(sshd: &SshServer, options: &AgentOptions, extra: &[&str]) -> SshSetup {
    let deployment = Deployment::start();
    let device = deployment.endpoint("ep-press", Side::Device, options);
    let service = deployment.endpoint("ep-eng", Side::Service, options);
    let local = local_port();
    deployment.application(
        "ssh-press",
        "ssh",
        &[format!("{local}:127.0.0.1:{}", sshd.port)],
        extra,
    );
    SshSetup {
        deployment,
        device,
        service,
        local,
    }
}

/// Waits (bounded) until SSH works through the local listener: `portico connect` returns
/// once the Service Endpoint's listener accepts, and the Device Endpoint may still be on its
/// way online.
fn wait_for_ssh(sshd: &SshServer, local: u16) {
    assert!(
        within(Duration::from_secs(15), || ssh_works(sshd, local)).is_some(),
        "SSH through the tunnel never worked"
    );
}

/// Whether `echo` over ssh through the local listener works now.
fn ssh_works(sshd: &SshServer, local: u16) -> bool {
    let out = sshd.run_via("127.0.0.1", local, "echo through-the-tunnel");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("through-the-tunnel")
}

#[test]
fn ssh_through_the_tunnel_behind_an_authenticating_proxy_copies_100_mb_intact() {
    let Some(sshd) = SshServer::start() else {
        return;
    };
    let Some(proxy) = AuthProxy::start("agent", "s3cret-proxy") else {
        return;
    };
    let options = AgentOptions {
        proxy: Some(proxy.url()),
        ..AgentOptions::default()
    };
    let setup = ssh_setup(&sshd, &options, &[]);
    let d = &setup.deployment;
    let device_agent = d.run_agent(&setup.device);
    let service_agent = d.run_agent(&setup.service);

    let printed = d.connect(&setup.service, "ssh-press");
    assert!(
        printed.contains(&format!("ssh -p {} localhost", setup.local)),
        "{printed}"
    );
    // A command over a real SSH session through Service Endpoint → relay → Device Endpoint.
    wait_for_ssh(&sshd, setup.local);
    let out = sshd.run_via("127.0.0.1", setup.local, "echo tunnel-ok; whoami");
    assert!(
        out.status.success(),
        "ssh: {}\ndevice agent:\n{}\nservice agent:\n{}",
        String::from_utf8_lossy(&out.stderr),
        device_agent.log(),
        service_agent.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tunnel-ok"));

    // 100 MB through the tunnel, streamed from a file, checked on the far side.
    let payload = d.agents.path().join("payload.bin");
    write_random_file(&payload, HUNDRED_MB, 7);
    let copy = sshd.path("payload.copy");
    let out = sshd.pipe_file_via("127.0.0.1", setup.local, &payload, &copy);
    assert!(
        out.status.success(),
        "copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), HUNDRED_MB);
    assert_eq!(
        sshd.remote_sha256_via("127.0.0.1", setup.local, &copy),
        sha256sum(&payload)
    );

    // Registration and both tunnels went through the proxy, with its credentials.
    let log = proxy.log();
    for host in [
        "gateway.eu1.portico.localhost",
        "connectivity.eu1.vpnrts.portico.localhost",
        "wss.eu1.vpnrts.portico.localhost",
    ] {
        assert!(log.contains(host), "the proxy never saw {host}:\n{log}");
    }
}

#[test]
fn a_wrong_proxy_password_and_an_intercepting_proxy_are_refused_with_clear_messages() {
    let Some(proxy) = AuthProxy::start("agent", "s3cret-proxy") else {
        return;
    };
    let Some(mitm) = InterceptingProxy::start() else {
        return;
    };
    let d = Deployment::start();
    let wrong = AgentOptions {
        proxy: Some(proxy.url_with("agent", "wrong")),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-wrong", Side::Device, &wrong);
    let out = d.agent_command(&config, &["endpoint", "register", "--code", "0123456789"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(said.contains("proxy refused the credentials"), "{said}");
    assert!(!said.contains("wrong"), "the proxy password leaked: {said}");

    let intercepted = AgentOptions {
        proxy: Some(mitm.url()),
        ..AgentOptions::default()
    };
    let config = d.write_agent_config("ep-mitm", Side::Device, &intercepted);
    let out = d.agent_command(&config, &["endpoint", "register", "--code", "0123456789"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(said.contains("intercepted"), "{said}");
    assert!(said.contains("TLS-inspecting proxy"), "{said}");
    assert!(said.contains("mitmproxy"), "the issuer is named: {said}");
}

#[test]
fn dtt_reverse_posts_a_ticket_from_the_device_side_to_a_service_network_server() {
    let Some(tickets) = TicketServer::start() else {
        return;
    };
    let ticket_port: u16 = tickets.url("").rsplit(':').next().unwrap().parse().unwrap();
    let d = Deployment::start();
    let options = AgentOptions::default();
    let device = d.endpoint("ep-press", Side::Device, &options);
    let service = d.endpoint("ep-eng", Side::Service, &options);
    let local = local_port();
    d.application(
        "tickets",
        "dtt-reverse",
        &[format!("{local}:127.0.0.1:{ticket_port}")],
        &["--target-endpoint", "ep-eng"],
    );
    let device_agent = d.run_agent(&device);
    let _service_agent = d.run_agent(&service);
    d.connect(&service, "tickets");

    // The device side's listener is the Device Endpoint's; a client there posts a ticket.
    let url = format!("http://127.0.0.1:{local}/tickets");
    let mut answer = String::new();
    let posted = within(Duration::from_secs(15), || {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "-w", "\n%{http_code}", "-d"])
            .arg(r#"{"machine":"press-7","fault":"E42 hydraulic pressure"}"#)
            .args(["-H", "Content-Type: application/json", &url])
            .output()
            .unwrap();
        answer = String::from_utf8_lossy(&out.stdout).to_string();
        answer.ends_with("201")
    });
    assert!(
        posted.is_some(),
        "curl on the device side: {answer}\ndevice agent:\n{}",
        device_agent.log()
    );
    let received = tickets.tickets();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].path, "/tickets");
    assert!(received[0].body.contains("E42 hydraulic pressure"));
}

#[test]
fn both_endpoints_come_back_within_10_s_after_serve_is_killed_and_restarted() {
    let Some(sshd) = SshServer::start() else {
        return;
    };
    let mut setup = ssh_setup(&sshd, &AgentOptions::default(), &[]);
    let device_agent = setup.deployment.run_agent(&setup.device);
    let service_agent = setup.deployment.run_agent(&setup.service);
    setup.deployment.connect(&setup.service, "ssh-press");
    wait_for_ssh(&sshd, setup.local);

    setup.deployment.portico.kill_and_restart(1);
    let restarted = Instant::now();
    let back = within(Duration::from_secs(10), || ssh_works(&sshd, setup.local));
    assert!(
        back.is_some(),
        "no SSH session within 10 s of the restart\ndevice agent:\n{}\nservice agent:\n{}",
        device_agent.log(),
        service_agent.log()
    );
    eprintln!(
        "a new SSH session worked {:.1} s after serve was back",
        restarted.elapsed().as_secs_f64()
    );
}

#[test]
fn a_blackholed_tunnel_is_declared_dead_and_the_agents_reconnect_within_60_s() {
    let Some(sshd) = SshServer::start() else {
        return;
    };
    let firewall = BlackholeProxy::connect();
    let options = AgentOptions {
        proxy: Some(firewall.url()),
        keep_alive_secs: Some(5),
        dead_after_secs: Some(15),
        ..AgentOptions::default()
    };
    let setup = ssh_setup(&sshd, &options, &[]);
    let d = &setup.deployment;
    let device_agent = d.run_agent(&setup.device);
    let service_agent = d.run_agent(&setup.service);
    d.connect(&setup.service, "ssh-press");
    wait_for_ssh(&sshd, setup.local);
    let before = firewall.accepted();

    // Every flow open now (both agents' tunnels and control channels) goes silent: no FIN,
    // no reset, as a firewall that dropped its state would do.
    assert!(firewall.blackhole() >= 4);
    let silenced = Instant::now();
    let back = within(Duration::from_secs(60), || {
        firewall.accepted() >= before + 4 && ssh_works(&sshd, setup.local)
    });
    assert!(
        back.is_some(),
        "no reconnect within 60 s\ndevice agent:\n{}\nservice agent:\n{}",
        device_agent.log(),
        service_agent.log()
    );
    eprintln!(
        "reconnected and working {:.1} s after the tunnels went silent",
        silenced.elapsed().as_secs_f64()
    );
}

#[test]
fn a_session_times_out_on_schedule_and_a_revoked_endpoint_is_cut_off() {
    let Some(sshd) = SshServer::start() else {
        return;
    };
    // The shortest session an application may have.
    let setup = ssh_setup(
        &sshd,
        &AgentOptions::default(),
        &["--session-timeout", "60"],
    );
    let d = &setup.deployment;
    let device_agent = d.run_agent(&setup.device);
    let _service_agent = d.run_agent(&setup.service);

    // A session of 60 s: an SSH session held open is cut when it ends.
    d.connect(&setup.service, "ssh-press");
    wait_for_ssh(&sshd, setup.local);
    let mut held = sshd
        .ssh_via("127.0.0.1", setup.local, "sleep 120")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ended = None;
    let _ = within(Duration::from_secs(80), || {
        ended = held.try_wait().unwrap();
        ended.is_some()
    });
    let ssh_ended_ms = unix_ms();
    if ended.is_none() {
        let _ = held.kill();
    }
    assert!(
        ended.is_some(),
        "the SSH session outlived its connection session"
    );
    let listed = d.remote(&["--json", "connection", "list"]);
    let sessions: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let session = &sessions[0];
    assert_eq!(session["end_reason"], "timeout", "{listed}");
    let started_ms = session["started_ms"].as_i64().unwrap();
    let took = session["ended_ms"].as_i64().unwrap() - started_ms;
    assert!(
        (60_000..62_000).contains(&took),
        "ended after {took} ms: {listed}"
    );
    // Timed from the session's own start (the connect that opened it may have waited
    // for the Service Endpoint's listener), to when the test saw SSH end.
    let lasted = ssh_ended_ms - started_ms;
    assert!(
        (59_000..=70_000).contains(&lasted),
        "the 60 s session ended the SSH session after {lasted} ms"
    );

    // A new session works; revoking the device's endpoint cuts it off.
    d.connect(&setup.service, "ssh-press");
    assert!(within(Duration::from_secs(10), || ssh_works(&sshd, setup.local)).is_some());
    d.remote(&["endpoint", "revoke", "ep-press"]);
    let cut = within(Duration::from_secs(10), || {
        device_agent.log().contains("revoked") && !ssh_works(&sshd, setup.local)
    });
    assert!(
        cut.is_some(),
        "the revoked endpoint kept its tunnel:\n{}",
        device_agent.log()
    );
}

/// `/etc/netns/{namespace}/hosts`, which `ip netns exec` puts in place of `/etc/hosts` for
/// what runs in the namespace: there the backend's names lead to its address on that
/// namespace's link. Removed on drop.
struct NamespaceHosts(std::path::PathBuf);

impl NamespaceHosts {
    fn write(namespace: &str, backend_ip: &str) -> NamespaceHosts {
        let dir = std::path::PathBuf::from(format!("/etc/netns/{namespace}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hosts"),
            format!(
                "127.0.0.1 localhost\n{backend_ip} wss.eu1.vpnrts.portico.localhost \
                 connectivity.eu1.vpnrts.portico.localhost gateway.eu1.portico.localhost\n"
            ),
        )
        .unwrap();
        NamespaceHosts(dir)
    }
}

impl Drop for NamespaceHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn ssh_across_network_namespaces_where_factory_and_service_reach_only_the_backend() {
    use support::peers::netns::{Topology, BACKEND_FACTORY_SIDE_IP, BACKEND_SERVICE_SIDE_IP};
    use support::peers::Place;
    let topology = match Topology::create() {
        Ok(topology) => topology,
        Err(error) => {
            eprintln!("skipped: network namespaces unavailable: {error}");
            return;
        }
    };
    let _factory_hosts = NamespaceHosts::write(&topology.factory, BACKEND_FACTORY_SIDE_IP);
    let _service_hosts = NamespaceHosts::write(&topology.service, BACKEND_SERVICE_SIDE_IP);
    let factory = Place::netns(&topology.factory);
    let service = Place::netns(&topology.service);
    let Some(sshd) = SshServer::start_in(factory.clone()) else {
        return;
    };
    // The two sides cannot reach each other: only the backend joins them.
    let probe = topology.run(
        &topology.service,
        &[
            "timeout",
            "3",
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/tcp/{}/{}",
                support::peers::netns::FACTORY_IP,
                sshd.port
            ),
        ],
    );
    assert!(
        !probe.status.success(),
        "the service network reached the factory"
    );

    let d = Deployment::start_in_netns(&topology.backend);
    let in_factory = AgentOptions {
        netns: Some(topology.factory.clone()),
        ..AgentOptions::default()
    };
    let in_service = AgentOptions {
        netns: Some(topology.service.clone()),
        ..AgentOptions::default()
    };
    let device = d.endpoint("ep-press", Side::Device, &in_factory);
    let service_config = d.endpoint("ep-eng", Side::Service, &in_service);
    let local = local_port();
    d.application(
        "ssh-press",
        "ssh",
        &[format!("{local}:127.0.0.1:{}", sshd.port)],
        &[],
    );
    let device_agent = d.run_agent(&device);
    let service_agent = d.run_agent(&service_config);
    d.connect(&service_config, "ssh-press");
    // As in `wait_for_ssh`: the Device Endpoint, started just before, may not have
    // connected yet when the Service Endpoint's listener is up.
    let mut last = String::new();
    let worked = within(Duration::from_secs(15), || {
        let out = sshd
            .ssh_from(&service, "127.0.0.1", local, "echo across-namespaces")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("across-namespaces")
    });
    assert!(
        worked.is_some(),
        "ssh from the service network: {last}\ndevice agent:\n{}\nservice agent:\n{}",
        device_agent.log(),
        service_agent.log()
    );
}

/// A TCP echo server on loopback for `connections` connections.
fn echo_server(connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections).flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    port
}

/// Sends `rounds` pieces of `piece` bytes of its own pattern and checks each echo.
fn echo_rounds(tcp: &mut TcpStream, seed: u8, rounds: usize, piece: usize) {
    let sent: Vec<u8> = (0..piece).map(|i| (i % 251) as u8 ^ seed).collect();
    let mut back = vec![0u8; piece];
    for _ in 0..rounds {
        tcp.write_all(&sent).unwrap();
        tcp.read_exact(&mut back).unwrap();
        assert!(back == sent, "connection {seed}: the echo differs");
    }
}

#[test]
fn a_burst_of_connections_beyond_the_spare_lanes_moves_to_lanes_and_every_byte_arrives() {
    // More connections at once than the agents keep spare lanes (4): the others start on
    // the tunnel and move to lanes once the spares they asked for are open, on both sides.
    const CONNECTIONS: usize = 12;
    let echo = echo_server(CONNECTIONS + 4);
    let d = Deployment::start();
    let options = AgentOptions::default();
    let device = d.endpoint("ep-press", Side::Device, &options);
    let service = d.endpoint("ep-eng", Side::Service, &options);
    let local = local_port();
    d.application("echo", "tcp", &[format!("{local}:127.0.0.1:{echo}")], &[]);
    let device_agent = d.run_agent(&device);
    let service_agent = d.run_agent(&service);
    d.connect(&service, "echo");
    let listening = within(Duration::from_secs(15), || {
        TcpStream::connect(("127.0.0.1", local)).is_ok()
    });
    assert!(listening.is_some(), "the service agent never listened");

    // Every connection echoes before and after the moves; the moves happen in between.
    let halfway = Arc::new(Barrier::new(CONNECTIONS + 1));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let halfway = halfway.clone();
            std::thread::spawn(move || {
                let mut tcp = TcpStream::connect(("127.0.0.1", local)).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                echo_rounds(&mut tcp, i as u8, 4, 64 * 1024);
                halfway.wait();
                halfway.wait();
                echo_rounds(&mut tcp, i as u8, 4, 64 * 1024);
                echo_rounds(&mut tcp, i as u8, 20, 1);
            })
        })
        .collect();
    halfway.wait();
    let moved = within(Duration::from_secs(20), || {
        service_agent
            .log()
            .contains("a tunnel stream moves to a lane")
            && device_agent
                .log()
                .contains("the relay moves a tunnel stream to a lane")
    });
    halfway.wait();
    for client in clients {
        client.join().unwrap();
    }
    assert!(
        moved.is_some(),
        "no stream moved\nservice agent:\n{}\ndevice agent:\n{}",
        service_agent.log(),
        device_agent.log()
    );
    assert!(!service_agent.log().contains("has no place"));
    assert!(!device_agent.log().contains("has no place"));
}
