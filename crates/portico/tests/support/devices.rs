//! Devices against `portico serve`: accounts, the bootstrap of a device's credentials and
//! its managed object through the device REST API (curl, as in the other tests), operations
//! created by an operator, and the stock clients of `tests/device_clients/` run as child
//! processes (`docs/device-clients.md`).
//!
//! A client whose runtime is missing (Node.js or the scripts' `node_modules`, the Python
//! virtualenv `target/peers/device-clients-venv`) is `None` with a "skipped: ..." line,
//! unless `PORTICO_REQUIRE_NODE=1` / `PORTICO_REQUIRE_PEERS=1` (set by `scripts/test`),
//! which turn that into a failure.

use super::{curl, Portico};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The host name devices talk to (the plain listener, with this `Host` header).
pub const SOUTHGATE: &str = "southgate.eu1.portico.localhost";
/// The bootstrap user devices use before they have credentials of their own.
pub const BOOTSTRAP_TENANT: &str = "management";
pub const BOOTSTRAP_USER: &str = "devicebootstrap";

/// How long a REST round trip or a client's start may take before the test gives up.
pub const STEP_LIMIT: Duration = Duration::from_secs(30);

/// Someone who signs in with HTTP Basic `<tenant>/<user>:<password>`.
#[derive(Clone, Debug)]
pub struct Account {
    pub tenant: String,
    pub user: String,
    pub password: String,
}

impl Account {
    pub fn new(tenant: &str, user: &str, password: &str) -> Account {
        Account {
            tenant: tenant.into(),
            user: user.into(),
            password: password.into(),
        }
    }

    /// What curl's `-u` takes.
    pub fn curl_user(&self) -> String {
        format!("{}/{}:{}", self.tenant, self.user, self.password)
    }

    /// The Bayeux ext token and Basic credentials: base64 of `<tenant>/<user>:<password>`.
    pub fn token(&self) -> String {
        base64(self.curl_user().as_bytes())
    }
}

/// Standard base64 with padding (RFC 4648), for Basic credentials.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A tenant `tenant` with an admin user (the operator of its devices), through the CLI.
pub fn tenant_with_admin(portico: &Portico, tenant: &str, password: &str) -> Account {
    portico.admin(&["tenant", "add", tenant]);
    portico.admin(&[
        "user",
        "add",
        "--tenant",
        tenant,
        "--name",
        "admin",
        "--role",
        "admin",
        "--password",
        password,
    ]);
    Account::new(tenant, "admin", password)
}

/// Gives the bootstrap user `management/devicebootstrap` the password `password`, through
/// the admin CLI.
pub fn provision_bootstrap_user(portico: &Portico, password: &str) -> Account {
    // `serve` makes the bootstrap user at its first start, with a password shown once;
    // the operator sets one the device images know.
    portico.admin(&[
        "user",
        "passwd",
        "--tenant",
        BOOTSTRAP_TENANT,
        "--name",
        BOOTSTRAP_USER,
        "--password",
        password,
    ]);
    Account::new(BOOTSTRAP_TENANT, BOOTSTRAP_USER, password)
}

/// A REST call on southgate as `account`: (status, body as JSON, or Null when empty).
pub fn rest(
    portico: &Portico,
    account: &Account,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = portico.plain_url("127.0.0.1", path);
    let host = format!("Host: {SOUTHGATE}");
    let user = account.curl_user();
    let mut args = vec!["-X", method, "-H", &host, "-u", &user];
    let text = body.map(serde_json::Value::to_string);
    if let Some(text) = &text {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            text,
        ]);
    }
    args.extend(["-H", "Accept: application/json", &url]);
    let (status, body) = curl(&args);
    let json = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("{method} {path}: {status} with a body that is not JSON ({e}): {body}")
        })
    };
    (status, json)
}

/// Like [`rest`], and asserts the status is `expected`; the body.
pub fn rest_expect(
    portico: &Portico,
    account: &Account,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    expected: u16,
) -> serde_json::Value {
    let (status, json) = rest(portico, account, method, path, body);
    assert_eq!(
        status, expected,
        "{method} {path} as {}/{}: {json}",
        account.tenant, account.user
    );
    json
}

/// The `id` field of a created thing, as a string (Cumulocity sends ids as strings).
pub fn id_of(json: &serde_json::Value) -> String {
    match &json["id"] {
        serde_json::Value::String(id) => id.clone(),
        serde_json::Value::Number(id) => id.to_string(),
        other => panic!("no id in {json} ({other})"),
    }
}

/// The device bootstrap as Cumulocity devices do it: the operator registers `serial`, the
/// device asks for its credentials with the bootstrap user (404 until the operator accepts),
/// the operator accepts, and the device gets `device_<serial>` with a password.
pub fn bootstrap_device(
    portico: &Portico,
    operator: &Account,
    bootstrap: &Account,
    serial: &str,
) -> Account {
    let request = serde_json::json!({ "id": serial });
    rest_expect(
        portico,
        operator,
        "POST",
        "/devicecontrol/newDeviceRequests",
        Some(&request),
        201,
    );
    let (status, body) = rest(
        portico,
        bootstrap,
        "POST",
        "/devicecontrol/deviceCredentials",
        Some(&request),
    );
    assert_eq!(status, 404, "credentials before acceptance: {body}");
    rest_expect(
        portico,
        operator,
        "PUT",
        &format!("/devicecontrol/newDeviceRequests/{serial}"),
        Some(&serde_json::json!({ "status": "ACCEPTED" })),
        200,
    );
    let credentials = rest_expect(
        portico,
        bootstrap,
        "POST",
        "/devicecontrol/deviceCredentials",
        Some(&request),
        201,
    );
    let field = |name: &str| {
        credentials[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {credentials}"))
            .to_string()
    };
    assert_eq!(field("tenantId"), operator.tenant, "{credentials}");
    assert_eq!(
        field("username"),
        format!("device_{serial}"),
        "{credentials}"
    );
    Account::new(&field("tenantId"), &field("username"), &field("password"))
}

/// The device's managed object, created by the device itself; its id.
pub fn create_device_object(portico: &Portico, device: &Account, name: &str) -> String {
    let object = serde_json::json!({
        "name": name,
        "type": "portico_TestDevice",
        "c8y_IsDevice": {},
        "c8y_SupportedOperations": ["c8y_Restart"],
    });
    id_of(&rest_expect(
        portico,
        device,
        "POST",
        "/inventory/managedObjects",
        Some(&object),
        201,
    ))
}

/// An operation for `device_id`, created by the operator; its id.
pub fn create_operation(
    portico: &Portico,
    operator: &Account,
    device_id: &str,
    what: &str,
) -> String {
    let operation = serde_json::json!({
        "deviceId": device_id,
        "description": what,
        "c8y_Restart": {},
    });
    let created = rest_expect(
        portico,
        operator,
        "POST",
        "/devicecontrol/operations",
        Some(&operation),
        201,
    );
    assert_eq!(created["status"], "PENDING", "{created}");
    id_of(&created)
}

/// An operation's status as `account` reads it.
pub fn operation_status(portico: &Portico, account: &Account, id: &str) -> String {
    let operation = rest_expect(
        portico,
        account,
        "GET",
        &format!("/devicecontrol/operations/{id}"),
        None,
        200,
    );
    operation["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status in {operation}"))
        .to_string()
}

/// The folder of the client scripts.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/device_clients")
}

/// Reports a missing client runtime: a failure when the run requires it (`require` names
/// the variable), else a "skipped" line.
fn missing(require: &str, what: &str) {
    assert!(
        std::env::var(require).ok().as_deref() != Some("1"),
        "{require}=1, but {what}"
    );
    eprintln!("skipped: {what}");
}

/// `node`, when it and the `node_modules` of `package` (a folder under the scripts') are
/// there.
pub fn node_for(package: &str) -> Option<PathBuf> {
    let modules = clients_dir().join(package).join("node_modules");
    let node = Command::new("node").arg("--version").output();
    if !matches!(node, Ok(ref out) if out.status.success()) {
        missing(
            "PORTICO_REQUIRE_NODE",
            "node is not installed (scripts/test installs it)",
        );
        return None;
    }
    if !modules.is_dir() {
        missing(
            "PORTICO_REQUIRE_NODE",
            &format!(
                "{} is missing (scripts/test runs npm ci there)",
                modules.display()
            ),
        );
        return None;
    }
    Some(PathBuf::from("node"))
}

/// The Python of the clients' virtualenv, with aiocometd-noloop and c8y-api in it.
pub fn venv_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/peers/device-clients-venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import aiocometd_noloop, c8y_api"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ready {
        missing(
            "PORTICO_REQUIRE_PEERS",
            "target/peers/device-clients-venv with aiocometd-noloop and c8y-api is missing (scripts/test creates it)",
        );
        return None;
    }
    Some(python)
}

/// What a client process printed, line by line, as it printed it.
pub enum Line {
    Out(String),
    Err(String),
}

/// A client script running as a child process; killed when dropped.
pub struct ClientProcess {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<Line>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ClientProcess {
    /// Runs `program script args` in the scripts' folder.
    pub fn start(program: &Path, script: &str, args: &[String]) -> ClientProcess {
        let mut child = Command::new(program)
            .arg(script)
            .args(args)
            .current_dir(clients_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} {script}: {e}", program.display()));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send(Line::Out(line));
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(Line::Err(line));
            }
        });
        ClientProcess {
            name: script.to_string(),
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Takes what the process printed so far (waiting up to `wait` for the first line).
    fn drain(&mut self, wait: Duration) {
        let mut next = self.lines.recv_timeout(wait).ok();
        while let Some(line) = next {
            match line {
                Line::Out(text) => self.stdout.push(text),
                Line::Err(text) => self.stderr.push(text),
            }
            next = self.lines.try_recv().ok();
        }
    }

    /// Waits up to `limit` for a stdout (`on_stdout`) or stderr line that `check` accepts;
    /// panics with everything printed if none comes or the process ends first.
    pub fn wait_for_line(
        &mut self,
        on_stdout: bool,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        loop {
            let lines = if on_stdout {
                &self.stdout
            } else {
                &self.stderr
            };
            if let Some(line) = lines[seen..].iter().find(|line| check(line)) {
                return line.clone();
            }
            seen = lines.len();
            let exited = self.child.try_wait().unwrap();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "{}: the line never came ({}):\n{}",
                self.name,
                exited.map_or("still running".into(), |s| s.to_string()),
                self.printed()
            );
            self.drain(Duration::from_millis(100));
        }
    }

    /// Waits up to `limit` for the process to end; asserts it ended with 0.
    pub fn assert_success(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {limit:?}:\n{}",
                self.name,
                self.printed()
            );
            self.drain(Duration::from_millis(100));
        };
        // The reader threads end with the process's pipes; take their last lines.
        self.drain(Duration::from_millis(500));
        assert!(
            status.success(),
            "{}: {status}:\n{}",
            self.name,
            self.printed()
        );
    }

    /// Every stdout line parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line}", self.name))
            })
            .collect()
    }

    pub fn printed(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }
}

/// How long each client may take from its start to its last message.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// The options every subscriber script takes, for `device`'s operations channel.
pub fn subscriber_args(
    portico: &Portico,
    device: &Account,
    device_id: &str,
    transport: &str,
) -> Vec<String> {
    [
        "--url",
        &portico.plain_url("127.0.0.1", "/notification/operations"),
        "--host",
        SOUTHGATE,
        "--transport",
        transport,
        "--channel",
        &format!("/{device_id}"),
        "--token",
        &device.token(),
        "--count",
        "1",
        "--timeout-ms",
        &CLIENT_LIMIT.as_millis().to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}
