//! A real HTTP proxy that requires Basic auth: Debian's `tinyproxy`, in the foreground.
//! It allows `CONNECT` to any port (no `ConnectPort` line), as the endpoint agents need
//! for the relay's port. A wrong password gets `401` from tinyproxy (a proxy should say
//! `407`; clients must handle both).

use super::{missing, port_taken, program, Place, Process};
use crate::support::free_port;
use std::path::Path;

const HINT: &str = "apt-get install tinyproxy";

pub struct AuthProxy {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub place: Place,
    pub user: String,
    pub password: String,
    process: Process,
}

impl AuthProxy {
    /// A proxy on a free loopback port, requiring `user`/`password`.
    pub fn start(user: &str, password: &str) -> Option<AuthProxy> {
        Self::start_in(Place::loopback(), user, password)
    }

    /// A proxy in `place`, requiring `user`/`password`.
    pub fn start_in(place: Place, user: &str, password: &str) -> Option<AuthProxy> {
        let tinyproxy = program("tinyproxy", &["/usr/bin/tinyproxy"], HINT)?;
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let config = dir.path().join("tinyproxy.conf");
            std::fs::write(
                &config,
                config_text(dir.path(), &place, port, user, password),
            )
            .unwrap();
            let mut command = place.command(&tinyproxy);
            command.arg("-d").arg("-c").arg(&config);
            let log = dir.path().join("tinyproxy.log");
            let mut process = Process::spawn("tinyproxy", command, &log);
            match process.wait_accepts(&place, port) {
                Ok(()) => {
                    return Some(AuthProxy {
                        dir,
                        port,
                        place,
                        user: user.to_string(),
                        password: password.to_string(),
                        process,
                    })
                }
                Err(log) if port_taken(&log) => last = log,
                Err(log) => panic!("{log}"),
            }
        }
        missing(&format!("tinyproxy found no free port: {last}"));
        None
    }

    /// `http://user:password@127.0.0.1:port`, for curl's `-x` or `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        self.url_with(&self.user, &self.password)
    }

    /// The proxy URL with other credentials (a wrong password, say).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// What tinyproxy logged: every CONNECT it relayed or refused.
    pub fn log(&self) -> String {
        self.process.output()
    }
}

fn config_text(dir: &Path, place: &Place, port: u16, user: &str, password: &str) -> String {
    // On the host only loopback clients; in a namespace the topology is the fence.
    let allow = match place.netns {
        None => "Allow 127.0.0.1\n",
        Some(_) => "",
    };
    format!(
        "Port {port}\n\
         Listen {bind}\n\
         Timeout 600\n\
         MaxClients 200\n\
         LogLevel Connect\n\
         PidFile \"{dir}/tinyproxy.pid\"\n\
         {allow}\
         BasicAuth {user} {password}\n",
        bind = place.bind,
        dir = dir.display(),
    )
}
