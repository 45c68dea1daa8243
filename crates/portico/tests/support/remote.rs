//! A Remote Services deployment for end-to-end tests: `portico serve` with its TLS listener
//! and development certificate; a tenant with a site, a device, an engineer and endpoints
//! made with `portico admin`; and endpoint agents (`portico endpoint run`) as real
//! processes that reach the backend by its Remote Services host names.

use super::{command_in, free_port, within, Portico};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const TENANT: &str = "acme";
pub const SITE: &str = "plant";
pub const DEVICE: &str = "press-7";
/// The engineer: a tenant `user` with the `user` role on the site, so allowed to connect.
pub const ENGINEER: &str = "eng";

const SERVE_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

/// `serve` in a network namespace of its own, reached on that namespace's addresses.
const SERVE_CONFIG_ANY_ADDRESS: &str = r#"
[server]
listen = "0.0.0.0:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

pub struct Deployment {
    pub portico: Portico,
    /// Agents' configurations, credentials and logs.
    pub agents: tempfile::TempDir,
    /// The network namespace each agent configuration runs in (none: the host's).
    places: RefCell<HashMap<PathBuf, Option<String>>>,
}

/// Which side an endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Device,
    Service,
}

/// An agent's settings beyond the defaults.
#[derive(Default, Clone)]
pub struct AgentOptions {
    /// `proxy = "..."` in the agent's file.
    pub proxy: Option<String>,
    /// The backend host to dial instead of `wss.eu1.vpnrts.portico.localhost`, with its port.
    pub backend: Option<String>,
    /// The gateway API's URL for the agent's `portico connect` (`api = …`), when not the
    /// deployment's own.
    pub api: Option<String>,
    /// A CA to trust instead of the deployment's development CA.
    pub ca_file: Option<PathBuf>,
    pub keep_alive_secs: Option<u32>,
    pub dead_after_secs: Option<u32>,
    /// `allow = [...]` for a Device Endpoint.
    pub allow: Option<Vec<String>>,
    /// The network namespace the agent (and its commands) run in.
    pub netns: Option<String>,
}

impl Deployment {
    /// `serve`, the tenant, its site and device, and the engineer.
    pub fn start() -> Deployment {
        Self::set_up(Portico::start(SERVE_CONFIG, &[]))
    }

    /// The same with `serve` inside network namespace `netns`, listening on all of its
    /// addresses.
    pub fn start_in_netns(netns: &str) -> Deployment {
        Self::set_up(Portico::start_in_netns(netns, SERVE_CONFIG_ANY_ADDRESS))
    }

    /// The same on a `serve` already running (a node of a cluster, say).
    pub fn on(portico: Portico) -> Deployment {
        Self::set_up(portico)
    }

    fn set_up(portico: Portico) -> Deployment {
        let deployment = Deployment {
            portico,
            agents: tempfile::tempdir().unwrap(),
            places: RefCell::new(HashMap::new()),
        };
        deployment.admin(&["tenant", "add", TENANT]);
        deployment.admin(&[
            "user",
            "add",
            "--tenant",
            TENANT,
            "--name",
            ENGINEER,
            "--role",
            "user",
            "--password",
            "correct horse battery staple",
        ]);
        deployment.remote(&["site", "add", "--name", SITE]);
        deployment.remote(&["device", "add", "--name", DEVICE, "--site", SITE]);
        deployment.remote(&[
            "member", "set", "--site", SITE, "--user", ENGINEER, "--role", "user",
        ]);
        deployment
    }

    /// `portico admin ARGS`, asserting success.
    pub fn admin(&self, args: &[&str]) -> String {
        self.portico.admin(args)
    }

    /// `portico admin ARGS --tenant acme`, asserting success.
    pub fn remote(&self, args: &[&str]) -> String {
        self.portico.admin(&[args, &["--tenant", TENANT]].concat())
    }

    /// The development CA `serve` made, which agents trust.
    pub fn ca_file(&self) -> PathBuf {
        self.portico.path("data/dev-ca.pem")
    }

    /// The backend URL agents dial: the Remote Services tunnel host on the TLS port.
    pub fn backend_url(&self) -> String {
        format!(
            "https://wss.eu1.vpnrts.portico.localhost:{}",
            self.portico.tls
        )
    }

    /// Adds endpoint `name` (a Device Endpoint of the device, or a Service Endpoint of the
    /// engineer), writes its agent configuration and registers it with `portico endpoint
    /// register`. Returns the configuration file.
    pub fn endpoint(&self, name: &str, side: Side, options: &AgentOptions) -> PathBuf {
        let binding = match side {
            Side::Device => ["--device", DEVICE],
            Side::Service => ["--user", ENGINEER],
        };
        let added =
            self.remote(&[&["--json", "endpoint", "add", "--name", name][..], &binding].concat());
        let added: serde_json::Value = serde_json::from_str(&added).unwrap();
        let code = added["registration_code"]
            .as_str()
            .unwrap_or_else(|| panic!("no registration code in {added}"))
            .to_string();
        let config = self.write_agent_config(name, side, options);
        let out = self.agent_command(&config, &["endpoint", "register", "--code", &code]);
        assert!(
            out.status.success(),
            "portico endpoint register: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        config
    }

    /// Writes (or rewrites) the agent configuration of endpoint `name`.
    pub fn write_agent_config(&self, name: &str, side: Side, options: &AgentOptions) -> PathBuf {
        let dir = self.agents.path();
        let role = match side {
            Side::Device => "device",
            Side::Service => "service",
        };
        let backend = options
            .backend
            .clone()
            .unwrap_or_else(|| self.backend_url());
        let ca = options.ca_file.clone().unwrap_or_else(|| self.ca_file());
        let mut text = format!(
            "role = \"{role}\"\nbackend = \"{backend}\"\n\
             credentials = \"{}\"\nca_file = \"{}\"\n",
            dir.join(format!("{name}.credentials.toml")).display(),
            ca.display(),
        );
        let api = options
            .api
            .clone()
            .or_else(|| options.backend.as_ref().map(|_| self.gateway_url()));
        if let Some(api) = api {
            text.push_str(&format!("api = \"{api}\"\n"));
        }
        match &options.proxy {
            Some(proxy) => text.push_str(&format!("proxy = \"{proxy}\"\n")),
            None => text.push_str("proxy = \"direct\"\n"),
        }
        if let Some(secs) = options.keep_alive_secs {
            text.push_str(&format!("keep_alive_secs = {secs}\n"));
        }
        if let Some(secs) = options.dead_after_secs {
            text.push_str(&format!("dead_after_secs = {secs}\n"));
        }
        if let Some(allow) = &options.allow {
            let quoted: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
            text.push_str(&format!("allow = [{}]\n", quoted.join(", ")));
        }
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        self.places
            .borrow_mut()
            .insert(path.clone(), options.netns.clone());
        path
    }

    fn gateway_url(&self) -> String {
        format!("https://gateway.eu1.portico.localhost:{}", self.portico.tls)
    }

    /// A `portico` command where the agent of `config` runs.
    fn portico_for(&self, config: &Path) -> Command {
        let netns = self.places.borrow().get(config).cloned().flatten();
        command_in(&netns, env!("CARGO_BIN_EXE_portico"))
    }

    /// `portico --config CONFIG ARGS` (an agent-side command), its output.
    pub fn agent_command(&self, config: &Path, args: &[&str]) -> Output {
        self.portico_for(config)
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("PORTICO_CONFIG")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts `portico endpoint run` for `config`; killed when dropped.
    pub fn run_agent(&self, config: &Path) -> Agent {
        let log = config.with_extension("log");
        let child = self
            .portico_for(config)
            .arg("--config")
            .arg(config)
            .args(["endpoint", "run"])
            .env_remove("PORTICO_CONFIG")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(config.with_extension("out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    /// Adds a Protocol Application from `template` with `mappings` (`LOCAL:HOST:PORT`) and
    /// assigns it to the device.
    pub fn application(&self, name: &str, template: &str, mappings: &[String], extra: &[&str]) {
        let mut args = vec!["app", "add", "--name", name, "--template", template];
        for mapping in mappings {
            args.extend(["--map", mapping.as_str()]);
        }
        args.extend(extra);
        self.remote(&args);
        self.remote(&["assignment", "add", "--device", DEVICE, "--app", name]);
    }

    /// `portico connect` from the Service Endpoint of `config`, retried (bounded) while the
    /// agents are still coming online. Its output.
    pub fn connect(&self, config: &Path, app: &str) -> String {
        let mut last = String::new();
        let done = within(Duration::from_secs(30), || {
            let out = self.agent_command(config, &["connect", "--device", DEVICE, "--app", app]);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out.status.success()
        });
        assert!(done.is_some(), "portico connect never succeeded: {last}");
        last
    }
}

/// A free local port for a listener mapping.
pub fn local_port() -> u16 {
    free_port()
}

/// A running `portico endpoint run`.
pub struct Agent {
    child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the agent is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
