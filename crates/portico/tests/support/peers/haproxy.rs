//! HAProxy, the load balancer of the cluster tests: TCP frontends on loopback (IPv4 and
//! IPv6, as `*.localhost` names resolve to both), each sending its connections to one
//! primary node and, once that node fails its readiness check, to the others (`backup`).
//! That pins an agent to a node while the node lives, and lets it come back through
//! another when the node dies, as behind a real deployment's load balancer.

use super::{port_taken, program, Place, Process};
use std::net::SocketAddr;
use std::process::Command;

const HINT: &str = "HAProxy is not installed (apt-get install haproxy; scripts/test does)";

/// A node as HAProxy sees it: where it serves TLS and its admin listener's port (where
/// `/readyz` says whether it takes connections).
#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub tls: SocketAddr,
    pub admin_port: u16,
}

pub struct HaProxy {
    pub process: Process,
    _dir: tempfile::TempDir,
    /// One port per frontend, in the order given.
    pub ports: Vec<u16>,
}

impl HaProxy {
    /// One frontend per entry of `primaries` (an index into `nodes`): that node first, the
    /// others as backups. `None` (with a message) when HAProxy is missing and peers are not
    /// required.
    pub fn start(nodes: &[Node], primaries: &[usize]) -> Option<HaProxy> {
        let haproxy = program("haproxy", &["/usr/sbin/haproxy"], HINT)?;
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let ports: Vec<u16> = primaries
                .iter()
                .map(|_| crate::support::free_port())
                .collect();
            let file = dir.path().join("haproxy.cfg");
            std::fs::write(&file, config(nodes, primaries, &ports)).unwrap();
            let mut command = Command::new(&haproxy);
            command.arg("-db").arg("-f").arg(&file);
            let mut process = Process::spawn("haproxy", command, &dir.path().join("haproxy.log"));
            let started = ports
                .iter()
                .try_for_each(|port| process.wait_accepts(&Place::loopback(), *port));
            match started {
                Ok(()) => {
                    return Some(HaProxy {
                        process,
                        _dir: dir,
                        ports,
                    })
                }
                Err(log) if port_taken(&log) => last = log,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("haproxy never found free ports: {last}")
    }
}

/// The configuration: TCP, readiness checks every 500 ms on the admin listener, and a
/// connection that finds its node gone sent to another.
fn config(nodes: &[Node], primaries: &[usize], ports: &[u16]) -> String {
    let mut config = String::from(
        "global\n    maxconn 2000\n\
         defaults\n    mode tcp\n    timeout connect 3s\n    timeout client 1h\n\
         \x20   timeout server 1h\n    retries 2\n    option redispatch\n\
         \x20   default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions\n",
    );
    for (i, (primary, port)) in primaries.iter().zip(ports).enumerate() {
        config.push_str(&format!(
            "listen frontend-{i}\n    bind 127.0.0.1:{port}\n    bind [::1]:{port}\n\
             \x20   option httpchk GET /readyz\n    http-check disable-on-404\n"
        ));
        for (n, node) in nodes.iter().enumerate() {
            let backup = if n == *primary { "" } else { " backup" };
            config.push_str(&format!(
                "    server node-{} {} check addr 127.0.0.1 port {}{backup}\n",
                n + 1,
                node.tls,
                node.admin_port
            ));
        }
    }
    config
}
