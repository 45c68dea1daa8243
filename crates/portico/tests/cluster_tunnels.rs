//! Tunnels across the nodes of a cluster (OPS-2), end to end with real peers: three
//! `portico serve` nodes on one PostgreSQL, a Device Endpoint attached to node 1 and a
//! Service Endpoint attached to node 3 carry a real SSH session that `portico connect`
//! opened through node 2 (the session's announcement reaches the endpoints on the other
//! nodes, and the stream crosses the link from node 3 to node 1). The agents reach the
//! nodes through HAProxy, one frontend per agent with its node as the primary server and
//! the others as backups. Then node 1 dies: the SSH session drops, HAProxy sends the
//! Device Endpoint's reconnect to a backup node and it is back online within 10 s, a new
//! SSH session works across the link, and no audit record was lost.
//!
//! Skipped unless `PORTICO_TEST_POSTGRES_URL` is set (see `support::cluster`).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::cluster::ClusterNodes;
use support::peers::haproxy::{HaProxy, Node};
use support::peers::ssh::SshServer;
use support::remote::{local_port, AgentOptions, Deployment, Side};
use support::within;

/// Whether `echo` over ssh through the local listener works now.
fn ssh_works(sshd: &SshServer, local: u16) -> bool {
    let out = sshd.run_via("127.0.0.1", local, "echo through-the-cluster");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("through-the-cluster")
}

#[test]
fn ssh_across_nodes_survives_the_death_of_the_device_endpoints_node() {
    let Some(sshd) = SshServer::start() else {
        return;
    };
    let Some(mut cluster) = ClusterNodes::start(3, 2) else {
        return;
    };
    // Each agent's way in, through HAProxy: the device's frontend prefers node 1, the
    // service's node 3, and `portico connect`'s node 2; the other nodes are backups.
    let nodes: Vec<Node> = (1..=3)
        .map(|n| Node {
            tls: cluster.tls_address(n),
            admin_port: cluster.node(n).admin,
        })
        .collect();
    let Some(haproxy) = HaProxy::start(&nodes, &[0, 2, 1]) else {
        return;
    };
    let ca = cluster.ca_file();
    let through = |frontend: usize| {
        let port = haproxy.ports[frontend];
        AgentOptions {
            backend: Some(format!("https://wss.eu1.vpnrts.portico.localhost:{port}")),
            api: Some(format!("https://gateway.eu1.portico.localhost:{port}")),
            ca_file: Some(ca.clone()),
            ..AgentOptions::default()
        }
    };
    // Node 2 outlives the test: the deployment's `portico admin` runs with its configuration.
    let d = Deployment::on(cluster.take(2));
    let device = d.endpoint("ep-press", Side::Device, &through(0));
    let service = d.endpoint("ep-eng", Side::Service, &through(1));
    let via_node_2 = d.write_agent_config("ep-eng-via-2", Side::Service, &through(2));
    std::fs::copy(
        d.agents.path().join("ep-eng.credentials.toml"),
        d.agents.path().join("ep-eng-via-2.credentials.toml"),
    )
    .unwrap();
    let local = local_port();
    d.application(
        "ssh-press",
        "ssh",
        &[format!("{local}:127.0.0.1:{}", sshd.port)],
        &[],
    );
    let device_agent = d.run_agent(&device);
    let service_agent = d.run_agent(&service);
    let attached = within(Duration::from_secs(20), || {
        cluster.leases_of("node-1") == ["acme/ep-press"]
            && cluster.leases_of("node-3") == ["acme/ep-eng"]
    });
    assert!(
        attached.is_some(),
        "the endpoints never attached to nodes 1 and 3:\n{}\n{}",
        device_agent.log(),
        service_agent.log()
    );

    // `portico connect` through node 2; the endpoints on nodes 1 and 3 hear of it.
    let printed = d.connect(&via_node_2, "ssh-press");
    assert!(
        printed.contains(&format!("ssh -p {local} localhost")),
        "{printed}"
    );
    assert!(
        within(Duration::from_secs(20), || ssh_works(&sshd, local)).is_some(),
        "SSH across nodes 3 and 1 never worked:\ndevice agent:\n{}\nservice agent:\n{}",
        device_agent.log(),
        service_agent.log()
    );

    // The stream crossed from node 3, where the Service Endpoint is, to node 1.
    let node_3_log = cluster.node(3).stderr();
    assert!(node_3_log.contains("node link dialled"), "{node_3_log}");
    assert!(
        cluster.node(1).stderr().contains("node link open"),
        "{}",
        cluster.node(1).stderr()
    );

    // A session that stays open.
    let mut held = sshd
        .ssh_via("127.0.0.1", local, "echo held-open; sleep 120")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(held.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "held-open");
    let audit_ids = cluster.db.query("SELECT id FROM rs_audit ORDER BY id");
    assert!(!audit_ids.is_empty(), "the connection was audited");

    // Node 1 dies; HAProxy sends the device's next tunnel to a backup node.
    cluster.kill(1);
    let died = Instant::now();
    let dropped = within(Duration::from_secs(30), || {
        held.try_wait().unwrap().is_some()
    });
    let _ = held.kill();
    let status = held.wait().unwrap();
    assert!(
        dropped.is_some(),
        "the SSH session on the dead node did not drop"
    );
    assert!(!status.success(), "the SSH session ended with an error");
    let back = within(
        Duration::from_secs(10).saturating_sub(died.elapsed()),
        || {
            cluster.leases_of("node-2") == ["acme/ep-press"]
                || cluster.leases_of("node-3") == ["acme/ep-eng", "acme/ep-press"]
        },
    );
    assert!(
        back.is_some(),
        "the Device Endpoint was not back through another node within 10 s of node 1's death:\n{}\nhaproxy:\n{}",
        device_agent.log(),
        haproxy.process.output()
    );
    assert!(
        within(Duration::from_secs(20), || ssh_works(&sshd, local)).is_some(),
        "a new SSH session after node 1 died never worked:\ndevice agent:\n{}\nservice agent:\n{}",
        device_agent.log(),
        service_agent.log()
    );

    // Every audit record written before node 1 died is still there.
    let audit_after = cluster.db.query("SELECT id FROM rs_audit ORDER BY id");
    for id in audit_ids.lines() {
        assert!(
            audit_after.lines().any(|a| a == id),
            "audit record {id} was lost"
        );
    }
}
