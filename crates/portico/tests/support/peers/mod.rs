//! Real peers for the Remote Services end-to-end tests: an OpenSSH server, an HTTP proxy
//! with Basic auth (tinyproxy), a TLS-intercepting proxy (mitmproxy), a proxy that can
//! silently blackhole its flows, network namespaces, and an HTTP "ticket" server.
//!
//! Every peer runs as a child process (or, for the blackhole proxy, threads) on ports it
//! picks itself, with its configuration in a temporary folder, and is stopped when dropped.
//! A peer whose program is missing is `None` with a "skipped: ..." line, unless
//! `PORTICO_REQUIRE_PEERS=1` (set by `scripts/test`), which turns that into a failure.
//! `docs/testing-peers.md` describes each peer.

pub mod blackhole;
pub mod haproxy;
pub mod mitm;
pub mod netns;
pub mod ssh;
pub mod ticket;
pub mod tinyproxy;
pub mod tls_server;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a peer may take to accept connections after its start.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Finds `name` on the PATH or at one of `also` (absolute paths). When it is missing:
/// panics with `hint` if the run requires peers, else prints "skipped: ..." and is `None`.
pub fn program(name: &str, also: &[&str], hint: &str) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .chain(also.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        missing(&format!("{name} is not installed ({hint})"));
    }
    found
}

/// Reports a missing peer: a failure when the run requires peers, else a "skipped" line.
pub fn missing(what: &str) {
    assert!(
        std::env::var("PORTICO_REQUIRE_PEERS").ok().as_deref() != Some("1"),
        "PORTICO_REQUIRE_PEERS=1, but {what}"
    );
    eprintln!("skipped: {what}");
}

/// Where a peer process runs: on the host, or inside a network namespace (through
/// `ip netns exec`), listening on `bind`.
#[derive(Clone, Debug)]
pub struct Place {
    pub netns: Option<String>,
    pub bind: IpAddr,
}

impl Place {
    /// The host's loopback, where most tests run their peers.
    pub fn loopback() -> Place {
        Place {
            netns: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Inside namespace `name`, listening on every address of that namespace.
    pub fn netns(name: &str) -> Place {
        Place {
            netns: Some(name.to_string()),
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    /// A command for `program` that runs in this place.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]).arg(program);
                command
            }
        }
    }

    /// Whether something in this place accepts TCP connections on `port` (of `bind`, or
    /// of the namespace's loopback when it listens on every address).
    fn accepts(&self, port: u16) -> bool {
        let ip = if self.bind.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.bind
        };
        match &self.netns {
            None => TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(1))
                .is_ok(),
            // A TCP connect from inside the namespace, through bash's /dev/tcp.
            Some(_) => self
                .command("timeout")
                .args(["2", "bash", "-c", &format!("exec 3<>/dev/tcp/{ip}/{port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()),
        }
    }
}

/// A running peer process, killed on drop; its stdout and stderr go to `log`.
pub struct Process {
    pub name: &'static str,
    pub log: PathBuf,
    child: Child,
}

impl Process {
    /// Spawns `command` with its output into `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Process {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name,
            log: log.to_path_buf(),
            child,
        }
    }

    /// Waits (bounded) until the process accepts connections on `port` in `place`. On
    /// failure, the process's log: the caller retries on "Address already in use".
    pub fn wait_accepts(&mut self, place: &Place, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status}: {}",
                    self.name,
                    self.output()
                ));
            }
            if place.accepts(port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} did not accept on port {port} within {START_LIMIT:?}: {}",
            self.name,
            self.output()
        ))
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a failed start is worth another try with other ports: another test took the
/// port between our pick and the peer's bind.
pub fn port_taken(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("could not bind")
}

/// Writes `len` bytes of incompressible pseudo-random data (fixed by `seed`) to `path`,
/// a megabyte at a time, so large test files never sit in memory.
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            // xorshift64: fast, and enough to defeat compression in the transport.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

/// The sha256 of a local file, by `sha256sum`.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    first_word(&out.stdout)
}

/// The first word of a command's output (a checksum, a name).
pub fn first_word(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The user the tests run as (root in CI), for logins to the SSH server.
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    first_word(&out.stdout)
}
