//! A network made of namespaces: a "factory" and a "service" namespace that each reach
//! a "backend" namespace through a veth pair, but not each other: separate subnets, and
//! the backend does not forward. Names are unique per test; everything is deleted on
//! drop. Creating namespaces needs root (CAP_SYS_ADMIN); without it `create` is an error
//! the test reports as "skipped: network namespaces unavailable: ...".

use super::{program, Place};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The factory's address, on its link to the backend.
pub const FACTORY_IP: &str = "10.231.1.2";
/// The backend's address on the factory link.
pub const BACKEND_FACTORY_SIDE_IP: &str = "10.231.1.1";
/// The service network's address, on its link to the backend.
pub const SERVICE_IP: &str = "10.231.2.2";
/// The backend's address on the service link.
pub const BACKEND_SERVICE_SIDE_IP: &str = "10.231.2.1";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Why the namespaces could not be made.
#[derive(Debug)]
pub struct NetnsError(pub String);

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Topology {
    pub factory: String,
    pub service: String,
    pub backend: String,
    /// The namespaces made so far, deleted on drop.
    made: Vec<String>,
}

impl Topology {
    /// Makes the three namespaces and their links. `Err` when namespaces cannot be made
    /// here (no privilege) or `ip` is missing and the run does not require peers.
    pub fn create() -> Result<Topology, NetnsError> {
        if program(
            "ip",
            &["/usr/sbin/ip", "/sbin/ip"],
            "apt-get install iproute2",
        )
        .is_none()
        {
            return Err(NetnsError("the ip program is not installed".into()));
        }
        let prefix = format!(
            "portico{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut topology = Topology {
            factory: format!("{prefix}-factory"),
            service: format!("{prefix}-service"),
            backend: format!("{prefix}-backend"),
            made: Vec::new(),
        };
        for name in [&topology.factory, &topology.service, &topology.backend].map(String::clone) {
            ip(&["netns", "add", &name])?;
            topology.made.push(name);
        }
        topology.wire()?;
        Ok(topology)
    }

    /// The veth pairs, addresses and routes; forwarding off in the backend.
    fn wire(&self) -> Result<(), NetnsError> {
        let (factory, service, backend) = (&self.factory, &self.service, &self.backend);
        ip(&[
            "link", "add", "f0", "netns", factory, "type", "veth", "peer", "name", "b0", "netns",
            backend,
        ])?;
        ip(&[
            "link", "add", "s0", "netns", service, "type", "veth", "peer", "name", "b1", "netns",
            backend,
        ])?;
        let steps: [(&str, &[&str]); 13] = [
            (
                factory,
                &["addr", "add", &format!("{FACTORY_IP}/24"), "dev", "f0"],
            ),
            (
                backend,
                &[
                    "addr",
                    "add",
                    &format!("{BACKEND_FACTORY_SIDE_IP}/24"),
                    "dev",
                    "b0",
                ],
            ),
            (
                service,
                &["addr", "add", &format!("{SERVICE_IP}/24"), "dev", "s0"],
            ),
            (
                backend,
                &[
                    "addr",
                    "add",
                    &format!("{BACKEND_SERVICE_SIDE_IP}/24"),
                    "dev",
                    "b1",
                ],
            ),
            (factory, &["link", "set", "lo", "up"]),
            (service, &["link", "set", "lo", "up"]),
            (backend, &["link", "set", "lo", "up"]),
            (factory, &["link", "set", "f0", "up"]),
            (service, &["link", "set", "s0", "up"]),
            (backend, &["link", "set", "b0", "up"]),
            (backend, &["link", "set", "b1", "up"]),
            // Default routes through the backend: only its refusal to forward keeps the
            // factory and the service network apart, as in a real deployment.
            (
                factory,
                &["route", "add", "default", "via", BACKEND_FACTORY_SIDE_IP],
            ),
            (
                service,
                &["route", "add", "default", "via", BACKEND_SERVICE_SIDE_IP],
            ),
        ];
        for (namespace, args) in steps {
            ip(&[&["-n", namespace], args].concat())?;
        }
        let forwarding = self.run(
            backend,
            &["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"],
        );
        if !forwarding.status.success() {
            return Err(NetnsError(format!(
                "cannot turn forwarding off in the backend: {}",
                String::from_utf8_lossy(&forwarding.stderr)
            )));
        }
        Ok(())
    }

    /// A command for `program` inside `namespace`.
    pub fn command(&self, namespace: &str, program: &str) -> Command {
        Place::netns(namespace).command(program)
    }

    /// Runs `args` inside `namespace`; its output.
    pub fn run(&self, namespace: &str, args: &[&str]) -> Output {
        let mut command = self.command(namespace, args[0]);
        command.args(&args[1..]).stdin(Stdio::null());
        command.output().unwrap()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and so the pairs.
        for name in &self.made {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Runs `ip args`; its stderr as the error when it fails.
fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetnsError(format!("ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
