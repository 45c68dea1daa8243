//! A real OpenSSH server (`sshd -D -e`) with a fresh host key, logging in the current
//! user with a fresh client key only, and the real `ssh`/`scp` clients to reach it
//! directly or through any port that leads to it (a Service Endpoint's local listener).

use super::{current_user, first_word, missing, port_taken, program, Place, Process};
use crate::support::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const HINT: &str = "apt-get install openssh-server openssh-client";

pub struct SshServer {
    pub dir: tempfile::TempDir,
    /// The port sshd listens on, in its place.
    pub port: u16,
    pub place: Place,
    /// The user the client logs in as: the one running the tests.
    pub user: String,
    process: Process,
}

impl SshServer {
    /// An SSH server on a free loopback port.
    pub fn start() -> Option<SshServer> {
        Self::start_in(Place::loopback())
    }

    /// An SSH server in `place` (the host or a network namespace).
    pub fn start_in(place: Place) -> Option<SshServer> {
        let sshd = program("sshd", &["/usr/sbin/sshd"], HINT)?;
        program("ssh", &[], HINT)?;
        let keygen = program("ssh-keygen", &[], HINT)?;
        // sshd started as root insists on its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            new_key(&keygen, &dir.path().join("host_key"));
            new_key(&keygen, &dir.path().join("client_key"));
            std::fs::copy(
                dir.path().join("client_key.pub"),
                dir.path().join("authorized_keys"),
            )
            .unwrap();
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, sshd_config(dir.path(), &place, port)).unwrap();
            let mut command = place.command(&sshd);
            command.arg("-D").arg("-e").arg("-f").arg(&config);
            let mut process = Process::spawn("sshd", command, &dir.path().join("sshd.log"));
            match process.wait_accepts(&place, port) {
                Ok(()) => {
                    return Some(SshServer {
                        dir,
                        port,
                        place,
                        user: current_user(),
                        process,
                    })
                }
                Err(log) if port_taken(&log) => last = log,
                Err(log) => panic!("{log}"),
            }
        }
        missing(&format!("sshd found no free port: {last}"));
        None
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A path for a file in this server's folder (where remote copies go).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What sshd logged (logins, failures).
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// `ssh` to this server's own port on loopback, running `remote`.
    pub fn ssh(&self, remote: &str) -> Command {
        self.ssh_via("127.0.0.1", self.port, remote)
    }

    /// `ssh` to `host:port` (which leads to this server), running `remote`, with the
    /// test key, no host key checks and no prompts.
    pub fn ssh_via(&self, host: &str, port: u16, remote: &str) -> Command {
        self.ssh_from(&Place::loopback(), host, port, remote)
    }

    /// `ssh` run in `client` (a network namespace, say) to `host:port`, running `remote`.
    pub fn ssh_from(&self, client: &Place, host: &str, port: u16, remote: &str) -> Command {
        let mut command = client.command("ssh");
        command
            .arg("-p")
            .arg(port.to_string())
            .args(self.client_options())
            .arg(format!("{}@{host}", self.user))
            .arg(remote);
        command
    }

    /// Runs `remote` over ssh through `host:port`; its output.
    pub fn run_via(&self, host: &str, port: u16, remote: &str) -> Output {
        self.ssh_via(host, port, remote)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Streams the local file `local` through `ssh host:port 'cat > remote'`.
    pub fn pipe_file_via(&self, host: &str, port: u16, local: &Path, remote: &Path) -> Output {
        let input = std::fs::File::open(local).unwrap();
        self.ssh_via(host, port, &format!("cat > '{}'", remote.display()))
            .stdin(input)
            .output()
            .unwrap()
    }

    /// Copies `local` to `remote` on the server with `scp` through `host:port`.
    pub fn scp_via(&self, host: &str, port: u16, local: &Path, remote: &Path) -> Output {
        Command::new("scp")
            .arg("-P")
            .arg(port.to_string())
            .args(self.client_options())
            .arg(local)
            .arg(format!("{}@{host}:{}", self.user, remote.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The sha256 of a file on the server, computed there by `sha256sum` over ssh.
    pub fn remote_sha256_via(&self, host: &str, port: u16, remote: &Path) -> String {
        let out = self.run_via(host, port, &format!("sha256sum '{}'", remote.display()));
        assert!(
            out.status.success(),
            "remote sha256sum: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        first_word(&out.stdout)
    }

    fn client_options(&self) -> Vec<String> {
        [
            "-i",
            &self.client_key().display().to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "LogLevel=ERROR",
        ]
        .map(String::from)
        .to_vec()
    }
}

fn new_key(keygen: &Path, path: &Path) {
    let out = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "portico-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A configuration that lets in the test key only, as the current user (root in CI),
/// with every file in `dir` and no checks of the temporary folder's permissions.
fn sshd_config(dir: &Path, place: &Place, port: u16) -> String {
    let dir = dir.display();
    format!(
        "Port {port}\n\
         ListenAddress {bind}\n\
         HostKey {dir}/host_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         StrictModes no\n\
         PermitRootLogin yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         Subsystem sftp internal-sftp\n\
         LogLevel VERBOSE\n",
        bind = place.bind,
    )
}
