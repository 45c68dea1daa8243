//! Runs the built `portico` binary with a configuration in a temporary folder, with
//! every listener on a free loopback port, and drives it with real clients (curl).
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub mod browser;
pub mod cluster;
pub mod device_agent;
pub mod device_web;
pub mod devices;
pub mod peers;
pub mod remote;

/// A port for a listener that a test starts later (often in another process), free when
/// it is handed out. It comes from below the kernel's range for automatic ports (32768 and
/// up on Linux), so neither a `bind` to port 0 nor an outgoing connection's local port can
/// take it in the meantime; within a process each port is handed out once, and each test
/// process starts at its own place in the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 32_768 - FIRST;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (start + offset) % COUNT).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below 32768");
}

/// Milliseconds since the Unix epoch, as the store's `*_ms` times count them.
pub fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

pub struct Portico {
    pub dir: tempfile::TempDir,
    pub plain: u16,
    pub tls: u16,
    pub admin: u16,
    child: Child,
    /// What `serve` was started with, for [`Portico::kill_and_restart`].
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The network namespace `serve` and its CLI run in, if not the host's.
    netns: Option<String>,
}

impl Drop for Portico {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Portico {
    /// Starts `portico serve` with `config` (a TOML text in which `{plain}`, `{tls}`,
    /// `{admin}` and `{link}` stand for free ports) and the files given, in a fresh folder.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Portico {
        Self::launch(|dir, (plain, tls, admin)| {
            let config = config
                .replace("{plain}", &plain.to_string())
                .replace("{tls}", &tls.to_string())
                .replace("{admin}", &admin.to_string())
                .replace("{link}", &free_port().to_string());
            std::fs::write(dir.join("portico.toml"), config).unwrap();
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            (vec!["--config".into(), "portico.toml".into()], Vec::new())
        })
    }

    /// Starts `portico serve` with no configuration file: the built-in defaults, with
    /// the listeners moved to free ports through environment overrides.
    pub fn start_with_defaults() -> Portico {
        Self::launch(|_, (plain, tls, admin)| {
            let env = vec![
                ("PORTICO_SERVER__LISTEN".into(), format!("127.0.0.1:{tls}")),
                (
                    "PORTICO_SERVER__LISTEN_PLAIN".into(),
                    format!("127.0.0.1:{plain}"),
                ),
                (
                    "PORTICO_SERVER__ADMIN_LISTEN".into(),
                    format!("127.0.0.1:{admin}"),
                ),
            ];
            (Vec::new(), env)
        })
    }

    /// Runs `portico serve` in a fresh folder prepared by `prepare` for three free ports.
    /// A port found free can be taken by a parallel test before Portico binds it; then
    /// Portico says so and exits, and the start is tried again with other ports.
    pub fn launch(
        prepare: impl Fn(&Path, (u16, u16, u16)) -> (Vec<String>, Vec<(String, String)>),
    ) -> Portico {
        Self::launch_in(None, prepare)
    }

    /// Starts `portico serve` with `config` inside network namespace `netns`, where the
    /// admin CLI runs too.
    pub fn start_in_netns(netns: &str, config: &str) -> Portico {
        Self::launch_in(Some(netns.to_string()), |dir, (plain, tls, admin)| {
            let config = config
                .replace("{plain}", &plain.to_string())
                .replace("{tls}", &tls.to_string())
                .replace("{admin}", &admin.to_string());
            std::fs::write(dir.join("portico.toml"), config).unwrap();
            (vec!["--config".into(), "portico.toml".into()], Vec::new())
        })
    }

    fn launch_in(
        netns: Option<String>,
        prepare: impl Fn(&Path, (u16, u16, u16)) -> (Vec<String>, Vec<(String, String)>),
    ) -> Portico {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let ports = (free_port(), free_port(), free_port());
            let (args, env) = prepare(dir.path(), ports);
            let child = spawn_serve(&netns, dir.path(), &args, &env, "");
            let (plain, tls, admin) = ports;
            let mut portico = Portico {
                dir,
                plain,
                tls,
                admin,
                child,
                args,
                env,
                netns: netns.clone(),
            };
            match portico.wait_ready() {
                Ok(()) => return portico,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => panic!("portico did not start:\n{log}"),
            }
        }
        panic!("portico found no free ports in three tries");
    }

    /// Kills `serve` at once (SIGKILL: no drain, no goodbyes, as a crash would) and starts
    /// it again in the same folder on the same ports; its output goes to `stdout.N.log` and
    /// `stderr.N.log` from then on. Panics if it is not ready within 30 s.
    pub fn kill_and_restart(&mut self, generation: u32) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_serve(
            &self.netns,
            self.dir.path(),
            &self.args,
            &self.env,
            &format!(".{generation}"),
        );
        if let Err(log) = self.wait_ready() {
            panic!("portico did not come back:\n{log}");
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.stderr()));
            }
            let out = command_in(&self.netns, "curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://127.0.0.1:{}/readyz", self.admin))
                .output()
                .unwrap();
            if out.stdout == b"200" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("not ready within 30 s: {}", self.stderr()))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.path("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    /// The admin token printed at first start.
    pub fn admin_token(&self) -> String {
        self.stdout()
            .split_whitespace()
            .find(|w| w.starts_with("ptk_"))
            .expect("the first start prints the admin token")
            .to_string()
    }

    /// Runs `portico` with `args` in this instance's folder.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        command_in(&self.netns, env!("CARGO_BIN_EXE_portico"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("PORTICO_CONFIG")
            .env("PORTICO_ADMIN_TOKEN", self.admin_token())
            .output()
            .unwrap()
    }

    /// `portico admin --config portico.toml ARGS` with this instance's token; asserts it
    /// succeeded and returns what it printed.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self.cli(&[&["admin", "--config", "portico.toml"], args].concat());
        assert!(
            out.status.success(),
            "portico admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Registers tenant `tenant` and its web app `app` with `backend` through the CLI.
    pub fn register_webapp(&self, tenant: &str, app: &str, backend: SocketAddr) {
        self.admin(&["tenant", "add", tenant]);
        let backend = format!("http://{backend}");
        self.admin(&[
            "webapp",
            "add",
            "--name",
            app,
            "--backend",
            &backend,
            "--tenant",
            tenant,
            "--auth",
            "none",
        ]);
    }

    pub fn plain_url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.plain)
    }
}

/// `curl -s` with the given arguments; returns (status, body).
/// Starts `portico serve ARGS` in `dir`, its output in `stdout{suffix}.log` and
/// `stderr{suffix}.log` there.
fn spawn_serve(
    netns: &Option<String>,
    dir: &Path,
    args: &[String],
    env: &[(String, String)],
    suffix: &str,
) -> Child {
    let stdout = std::fs::File::create(dir.join(format!("stdout{suffix}.log"))).unwrap();
    let stderr = std::fs::File::create(dir.join(format!("stderr{suffix}.log"))).unwrap();
    command_in(netns, env!("CARGO_BIN_EXE_portico"))
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env_remove("PORTICO_CONFIG")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A command for `program` on the host, or inside network namespace `netns`.
pub fn command_in(netns: &Option<String>, program: &str) -> Command {
    match netns {
        None => Command::new(program),
        Some(name) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", name, program]);
            command
        }
    }
}

pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Waits, up to `limit`, for `check` to hold; returns how long it took.
pub fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A backend on a free loopback port, in a thread of its own (the tests are synchronous):
/// answers `{name} {path-and-query}`; `/download` streams `chunks` × 64 KiB, 30 ms apart.
pub fn backend(name: &'static str, chunks: usize) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<Incoming>| async move {
                            Ok::<_, Infallible>(answer(name, chunks, &req))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn answer(name: &'static str, chunks: usize, req: &Request<Incoming>) -> Response<Body> {
    if req.uri().path() == "/download" {
        let body = stream::unfold(0usize, move |i| async move {
            if i == chunks {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'd'; 64 * 1024]))),
                i + 1,
            ))
        });
        return Response::new(StreamBody::new(body).boxed_unsync());
    }
    if req.uri().path() == "/whoami" {
        // What the backend was told about the caller: the Authorization header.
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        return Response::new(Full::new(Bytes::from(authorization.to_string())).boxed_unsync());
    }
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Response::new(Full::new(Bytes::from(format!("{name} {target}"))).boxed_unsync())
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Signals and the end of the process, for the reload and drain tests.
impl Portico {
    /// Sends `signal` (`HUP`, `TERM`) to the running Portico.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Sends the process SIGTERM, as a service manager stopping it would.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits up to `limit` for the process to exit; its status, or None if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// A WebSocket echo backend (tokio-tungstenite) on a free loopback port, in a thread of
/// its own; it reports the close code of every close frame it receives on `closes`.
pub fn websocket_echo_backend(closes: std::sync::mpsc::Sender<Option<u16>>) -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let closes = closes.clone();
                tokio::spawn(async move {
                    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = socket.next().await {
                        match message {
                            data @ (Message::Text(_) | Message::Binary(_)) => {
                                let echoed = socket.send(data).await;
                                if echoed.is_err() {
                                    return;
                                }
                            }
                            Message::Close(frame) => {
                                let _ = closes.send(frame.map(|f| u16::from(f.code)));
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// The value of cookie `name` among the `Set-Cookie` headers of a response's `headers`
/// (as `curl -D -` prints them).
pub fn cookie_value(headers: &str, name: &str) -> String {
    headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.trim().strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {headers}"))
        .to_string()
}

/// Tenant `acme` with a session web app `shop` (a test backend) and `users` (name, role),
/// all with `password`: what the tests that sign in on a tenant's app start from.
pub fn acme_shop_with_users(portico: &Portico, users: &[(&str, &str)], password: &str) {
    let backend_url = format!("http://{}", backend("shop", 0));
    portico.admin(&["tenant", "add", "acme"]);
    portico.admin(&[
        "webapp",
        "add",
        "--name",
        "shop",
        "--backend",
        &backend_url,
        "--tenant",
        "acme",
        "--auth",
        "session",
    ]);
    for (user, role) in users {
        portico.admin(&[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            user,
            "--role",
            role,
            "--password",
            password,
        ]);
    }
}

/// Signs `user` in on web-app host `host` through the plain listener `plain`: the `Cookie`
/// header to send afterwards (session and CSRF cookies) and the CSRF token for
/// `X-XSRF-TOKEN`.
pub fn sign_in_on(plain: u16, host: &str, user: &str, password: &str) -> (String, String) {
    let url = format!("http://127.0.0.1:{plain}/login");
    let form = format!("username={user}&password={}", password.replace(' ', "+"));
    let host = format!("Host: {host}");
    let (status, headers) = curl(&["-D", "-", "-o", "/dev/null", "-H", &host, "-d", &form, &url]);
    assert_eq!(status, 303, "{headers}");
    let (session, xsrf) = (
        cookie_value(&headers, "SESSION"),
        cookie_value(&headers, "XSRF-TOKEN"),
    );
    (
        format!("Cookie: SESSION={session}; XSRF-TOKEN={xsrf}"),
        xsrf,
    )
}

/// A TLS connection to `portico`'s TLS listener for `host` (SNI), trusting the development
/// CA it made.
pub async fn tls_to(
    portico: &Portico,
    host: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(portico.path("data/dev-ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", portico.tls))
        .await
        .unwrap();
    let name = ServerName::try_from(host.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}
