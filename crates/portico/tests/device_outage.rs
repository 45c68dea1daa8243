//! Operations are never lost (DC-2, DC-3), against the built binary: a device that was
//! offline gets what was created meanwhile, a crash and restart of `serve` during long
//! polls loses none of 1,000 operations and completes none twice, and a poll connection
//! silently dropped by the network (a black hole between device and gateway) is survived.
//! The device is `support::device_agent`, which behaves as Cumulocity agents do.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use http::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::device_agent::{Agent, AgentConfig, DeviceApi};
use support::peers::blackhole::BlackholeProxy;
use support::Portico;

const SOUTHGATE: &str = "southgate.eu1.portico.localhost";
const ADMIN: &str = "acme/admin:admin-password-1";
const DEVICE_USER: &str = "device_a1";
const DEVICE_PASSWORD: &str = "device-password-1";

/// Short holds so that lost polls are noticed in seconds.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"

[notifications]
connect_timeout = "3s"
max_connect_timeout = "5s"
session_grace = "30s"
"#;

struct Setup {
    portico: Portico,
    admin: DeviceApi,
    device_id: String,
    runtime: tokio::runtime::Runtime,
}

/// Sessions that expire soon after a lost poll: the client must handshake again.
const SHORT_GRACE_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"

[notifications]
connect_timeout = "3s"
max_connect_timeout = "5s"
session_grace = "2s"
"#;

impl Setup {
    /// A tenant with an admin and a device user, and the device's managed object.
    fn new() -> Setup {
        Self::with_config(CONFIG)
    }

    fn with_config(config: &str) -> Setup {
        let portico = Portico::start(config, &[]);
        portico.admin(&["tenant", "add", "acme"]);
        for (name, role, password) in [
            ("admin", "admin", "admin-password-1"),
            (DEVICE_USER, "device", DEVICE_PASSWORD),
        ] {
            portico.admin(&[
                "user",
                "add",
                "--tenant",
                "acme",
                "--name",
                name,
                "--role",
                role,
                "--password",
                password,
            ]);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let admin = DeviceApi::new(plain(&portico), SOUTHGATE, ADMIN);
        let device = DeviceApi::new(plain(&portico), SOUTHGATE, &device_login());
        let (status, body) = runtime
            .block_on(device.call(
                Method::POST,
                "/inventory/managedObjects",
                Some(&json!({"name": "a1", "c8y_IsDevice": {}})),
                Duration::from_secs(10),
            ))
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let device_id = body["id"].as_str().unwrap().to_string();
        Setup {
            portico,
            admin,
            device_id,
            runtime,
        }
    }

    fn agent_through(&self, addr: SocketAddr) -> Agent {
        self.agent_with_delay(addr, Duration::from_secs(6))
    }

    /// An agent that gives a connect `network_delay` beyond the server's hold.
    fn agent_with_delay(&self, addr: SocketAddr, network_delay: Duration) -> Agent {
        Agent::start(AgentConfig {
            api: DeviceApi::new(addr, SOUTHGATE, &device_login()),
            device_id: self.device_id.clone(),
            login: device_login(),
            network_delay,
        })
    }

    /// Creates an operation; its id once the server acknowledged it, `None` when the
    /// request failed (the server was down).
    fn create_operation(&self, n: usize) -> Option<String> {
        let body = json!({
            "deviceId": self.device_id,
            "description": format!("operation {n}"),
            "c8y_Command": {"text": format!("run {n}")},
        });
        match self.runtime.block_on(self.admin.call(
            Method::POST,
            "/devicecontrol/operations",
            Some(&body),
            Duration::from_secs(10),
        )) {
            Ok((201, body)) => Some(body["id"].as_str().unwrap().to_string()),
            _ => None,
        }
    }

    fn status_of(&self, id: &str) -> String {
        let (status, body) = self
            .runtime
            .block_on(self.admin.call(
                Method::GET,
                &format!("/devicecontrol/operations/{id}"),
                None,
                Duration::from_secs(10),
            ))
            .unwrap();
        assert_eq!(status, 200, "operation {id}: {body}");
        body["status"].as_str().unwrap_or_default().to_string()
    }
}

fn device_login() -> String {
    format!("acme/{DEVICE_USER}:{DEVICE_PASSWORD}")
}

fn plain(portico: &Portico) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], portico.plain))
}

fn ids(range: std::ops::Range<usize>, setup: &Setup) -> HashSet<String> {
    range
        .map(|n| setup.create_operation(n).expect("the server is up"))
        .collect()
}

#[test]
fn a_device_offline_when_operations_were_created_gets_them_when_it_comes_back() {
    let setup = Setup::new();
    let before = ids(0..5, &setup);
    let agent = setup.agent_through(plain(&setup.portico));
    assert!(
        agent.wait_for(Duration::from_secs(30), |r| before.is_subset(&r.done)),
        "operations created before the device came online: {:?}",
        agent.report()
    );
    assert!(
        before.is_subset(&agent.report().queried),
        "they were found by its PENDING query"
    );
    // Online now: new operations arrive as notifications.
    let online = ids(5..10, &setup);
    assert!(
        agent.wait_for(Duration::from_secs(30), |r| online.is_subset(&r.done)),
        "{:?}",
        agent.report()
    );
    assert!(online.is_subset(&agent.report().notified));
    // Offline again (it stops polling), operations meanwhile, back again.
    drop(agent);
    let meanwhile = ids(10..15, &setup);
    let agent = setup.agent_through(plain(&setup.portico));
    assert!(
        agent.wait_for(Duration::from_secs(30), |r| meanwhile.is_subset(&r.done)),
        "{:?}",
        agent.report()
    );
    for id in before.iter().chain(&online).chain(&meanwhile) {
        assert_eq!(setup.status_of(id), "SUCCESSFUL", "operation {id}");
    }
    assert_eq!(agent.report().refused, 0);
}

#[test]
fn a_crash_and_restart_during_long_polls_loses_none_of_1000_operations() {
    let mut setup = Setup::new();
    let agent = setup.agent_through(plain(&setup.portico));
    assert!(agent.wait_for(Duration::from_secs(20), |r| r.handshakes >= 1));
    let mut acknowledged = Vec::new();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while acknowledged.len() < 1000 {
        assert!(
            Instant::now() < deadline,
            "1,000 operations not created in time"
        );
        if acknowledged.len() == 400 && n == 400 {
            // SIGKILL: no drain, no saving of the sessions' positions.
            setup.portico.kill_and_restart(1);
        }
        n += 1;
        match setup.create_operation(n) {
            Some(id) => acknowledged.push(id),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let all: HashSet<String> = acknowledged.iter().cloned().collect();
    assert_eq!(
        all.len(),
        1000,
        "every acknowledged operation has its own id"
    );
    let finished = agent.wait_for(Duration::from_secs(120), |r| all.is_subset(&r.done));
    let report = agent.report();
    drop(agent);
    assert!(
        finished,
        "{} of 1,000 done; handshakes {}, duplicates {}",
        all.intersection(&report.done).count(),
        report.handshakes,
        report.duplicates
    );
    assert_eq!(report.refused, 0, "no operation was completed twice");
    // The server agrees: each one SUCCESSFUL, found by id.
    let mut successful = 0;
    for id in &acknowledged {
        if setup.status_of(id) == "SUCCESSFUL" {
            successful += 1;
        }
    }
    assert_eq!(successful, 1000);
    println!(
        "1,000 operations across a crash: {} by notification, {} by query, {} duplicate deliveries, {} handshakes",
        report.notified.len(),
        report.queried.len(),
        report.duplicates,
        report.handshakes
    );
}

/// The session outlives the black hole: the answer the network swallowed is handed out
/// again on the same session when the client comes back late.
#[test]
fn a_silently_dropped_poll_connection_is_survived_without_losing_an_operation() {
    let report = survive_a_black_hole(Setup::new(), Duration::from_secs(6));
    assert_eq!(report.handshakes, 1, "the session lived on: {report:?}");
}

/// The session expires during the black hole: the client is told to handshake again, and
/// finds the operations with its PENDING query.
#[test]
fn a_client_whose_session_expired_behind_a_black_hole_handshakes_again_and_gets_everything() {
    // The agent waits long enough for the server to have ended the session.
    let report = survive_a_black_hole(
        Setup::with_config(SHORT_GRACE_CONFIG),
        Duration::from_secs(15),
    );
    assert!(report.handshakes >= 2, "it handshook again: {report:?}");
}

/// Operations sent while the agent's poll is swallowed by a black hole between it and the
/// gateway all end SUCCESSFUL; returns the agent's report.
fn survive_a_black_hole(
    setup: Setup,
    network_delay: Duration,
) -> support::device_agent::AgentReport {
    let hole = BlackholeProxy::forward_to(plain(&setup.portico));
    let agent = setup.agent_with_delay(hole.addr, network_delay);
    let first = ids(0..3, &setup);
    assert!(
        agent.wait_for(Duration::from_secs(30), |r| first.is_subset(&r.done)),
        "{:?}",
        agent.report()
    );
    // The agent is waiting on a held connect now; the network swallows it, and the
    // answer carrying the next operations with it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(hole.blackhole() >= 1, "a poll was in flight");
    let lost = ids(3..8, &setup);
    assert!(
        agent.wait_for(Duration::from_secs(60), |r| lost.is_subset(&r.done)),
        "operations sent while the poll was black: {:?}",
        agent.report()
    );
    assert!(
        hole.accepted() > 1,
        "the agent came back on a new connection"
    );
    for id in first.iter().chain(&lost) {
        assert_eq!(setup.status_of(id), "SUCCESSFUL", "operation {id}");
    }
    let report = agent.report();
    assert_eq!(report.refused, 0);
    report
}

#[test]
fn a_device_of_another_tenant_sees_nothing_of_acme() {
    let setup = Setup::new();
    setup.portico.admin(&["tenant", "add", "other"]);
    setup.portico.admin(&[
        "user",
        "add",
        "--tenant",
        "other",
        "--name",
        "device_b1",
        "--role",
        "device",
        "--password",
        "device-password-2",
    ]);
    let stranger_login = "other/device_b1:device-password-2";
    let stranger = DeviceApi::new(plain(&setup.portico), SOUTHGATE, stranger_login);
    let call = |method: Method, path: &str, body: Option<&Value>| {
        setup
            .runtime
            .block_on(stranger.call(method, path, body, Duration::from_secs(10)))
            .unwrap()
    };
    // The stranger listens on acme's device channel and asks for its things.
    let agent = Agent::start(AgentConfig {
        api: stranger.clone(),
        device_id: setup.device_id.clone(),
        login: stranger_login.to_string(),
        network_delay: Duration::from_secs(6),
    });
    let owner = setup.agent_through(plain(&setup.portico));
    assert!(agent.wait_for(Duration::from_secs(20), |r| r.handshakes >= 1));
    let created = ids(0..3, &setup);
    assert!(owner.wait_for(Duration::from_secs(30), |r| created.is_subset(&r.done)));
    let report = agent.report();
    assert!(
        report.notified.is_empty() && report.queried.is_empty(),
        "another tenant's device got acme's operations: {report:?}"
    );
    let id = created.iter().next().unwrap();
    let (status, _) = call(
        Method::GET,
        &format!("/devicecontrol/operations/{id}"),
        None,
    );
    assert_eq!(status, 404, "acme's operation is not the stranger's to see");
    let (status, _) = call(
        Method::GET,
        &format!("/inventory/managedObjects/{}", setup.device_id),
        None,
    );
    assert_eq!(status, 404, "nor acme's device");
    let (status, _) = call(
        Method::PUT,
        &format!("/devicecontrol/operations/{id}"),
        Some(&json!({"status": "EXECUTING"})),
    );
    assert_eq!(status, 404, "nor may it touch the operation");
}

/// DC-3: a device's quiet connection carries TCP keep-alive probes (after 60 s of silence),
/// which keep NAT and firewall state alive and find a peer that vanished without a FIN.
#[test]
fn accepted_connections_have_tcp_keep_alive() {
    let portico = Portico::start(CONFIG, &[]);
    let _quiet = std::net::TcpStream::connect(plain(&portico)).unwrap();
    let mut seen = String::new();
    let found = support::within(Duration::from_secs(10), || {
        let out = std::process::Command::new("ss")
            .args(["-tnoH", "state", "established"])
            .arg(format!("( sport = :{} )", portico.plain))
            .output()
            .expect("ss (iproute2) runs");
        seen = String::from_utf8_lossy(&out.stdout).to_string();
        seen.contains("timer:(keepalive,")
    });
    assert!(
        found.is_some(),
        "no keep-alive timer on the accepted socket: {seen:?}"
    );
}
