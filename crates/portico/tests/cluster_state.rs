//! Shared state across nodes (OPS-2): three `portico serve` processes on one PostgreSQL
//! database. A registry change through node 2 routes on nodes 1 and 3 within 2 s; a login
//! on node 1 is valid on node 3 and ends there at logout and at the user's removal; a
//! device long-polling node 3 gets an operation created through node 1, and its next
//! connect, on node 1, keeps its session and gets the next operation, nothing twice.
//!
//! Needs `PORTICO_TEST_POSTGRES_URL` (`scripts/test` sets it); skipped without it unless
//! `PORTICO_REQUIRE_POSTGRES=1`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::devices::{create_device_object, create_operation, id_of, Account, SOUTHGATE};
use support::{backend, cookie_value, curl, within, Portico};

const SHOP: &str = "acme-shop.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery staple";

/// A database of its own on the test server, dropped at the end.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Option<Database> {
        let Some(server) = std::env::var("PORTICO_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert_ne!(
                std::env::var("PORTICO_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "PORTICO_REQUIRE_POSTGRES=1 but PORTICO_TEST_POSTGRES_URL is not set: run the \
                 tests with scripts/test"
            );
            println!("skipped: PORTICO_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("t_cluster_{:08x}", rand_suffix());
        run_sql(&server, &format!("CREATE DATABASE {name}"));
        let (base, _) = server.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Some(Database { server, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        run_sql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A few random bits from the clock and the process, enough to keep parallel runs apart.
fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

fn run_sql(server: &str, sql: &str) {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.ok();
    });
}

/// Three nodes on one database; node 1 was started first and printed the admin token.
struct Cluster {
    nodes: Vec<Portico>,
    token: String,
    // Dropped after the nodes, which hold connections to it.
    _database: Database,
}

impl Cluster {
    fn start(database: Database) -> Cluster {
        let secret = "6f3c1d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
        let nodes: Vec<Portico> = (1..=3)
            .map(|n| {
                let config = format!(
                    r#"
[server]
listen = "127.0.0.1:{{tls}}"
listen_plain = "127.0.0.1:{{plain}}"
admin_listen = "127.0.0.1:{{admin}}"
database = "{url}"

[notifications]
connect_timeout = "8s"
max_connect_timeout = "10s"
session_grace = "30s"

[cluster]
node = "node-{n}"
link_listen = "127.0.0.1:{{link}}"
secret_file = "cluster.secret"
"#,
                    url = database.url,
                );
                Portico::start(&config, &[("cluster.secret", secret)])
            })
            .collect();
        let token = nodes[0].admin_token();
        Cluster {
            nodes,
            token,
            _database: database,
        }
    }

    /// Node `n` (1-based).
    fn node(&self, n: usize) -> &Portico {
        &self.nodes[n - 1]
    }

    /// `portico admin ARGS` against node `n` (its configuration, its gateway).
    fn admin(&self, n: usize, args: &[&str]) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["admin", "--config", "portico.toml"])
            .args(args)
            .current_dir(self.node(n).dir.path())
            .env_remove("PORTICO_CONFIG")
            .env("PORTICO_ADMIN_TOKEN", &self.token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "portico admin {args:?} through node {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn add_user(&self, n: usize, name: &str, role: &str, password: &str) {
        self.admin(
            n,
            &[
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
            ],
        );
    }
}

/// `GET /whoami` on the shop through node `node`: the status and what the backend saw.
fn whoami(node: &Portico, cookie: Option<&str>) -> (u16, String) {
    let host = format!("Host: {SHOP}");
    let url = node.plain_url("127.0.0.1", "/whoami");
    let mut args = vec![
        "-H",
        host.as_str(),
        "-H",
        "X-Requested-With: XMLHttpRequest",
    ];
    let cookie = cookie.map(|c| format!("Cookie: SESSION={c}"));
    if let Some(cookie) = &cookie {
        args.extend(["-H", cookie.as_str()]);
    }
    args.push(&url);
    curl(&args)
}

/// Signs in as `user` through `node`; the session cookie.
fn login(node: &Portico, user: &str) -> String {
    let form = format!("username={user}&password={}", PASSWORD.replace(' ', "+"));
    let url = node.plain_url("127.0.0.1", "/login");
    let host = format!("Host: {SHOP}");
    let (status, headers) = curl(&["-D", "-", "-o", "/dev/null", "-H", &host, "-d", &form, &url]);
    assert_eq!(status, 303, "{user} signs in: {headers}");
    cookie_value(&headers, "SESSION")
}

/// Bayeux messages to `/notification/operations` through `node` as `account`; the reply.
fn bayeux(node: &Portico, account: &Account, body: &Value) -> Vec<Value> {
    bayeux_on(node.plain, account, body)
}

/// The same through the plain-HTTP port `plain` (for a thread of its own).
fn bayeux_on(plain: u16, account: &Account, body: &Value) -> Vec<Value> {
    let url = format!("http://127.0.0.1:{plain}/notification/operations");
    let host = format!("Host: {SOUTHGATE}");
    let user = account.curl_user();
    let body = body.to_string();
    let (status, text) = curl(&[
        "-X",
        "POST",
        "-H",
        &host,
        "-u",
        &user,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &body,
        &url,
    ]);
    assert_eq!(status, 200, "{body}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn connect_message(client_id: &str) -> Value {
    json!({"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling"})
}

/// The ids of the operations in a connect's reply.
fn operation_ids(reply: &[Value]) -> Vec<String> {
    reply
        .iter()
        .filter(|m| m.get("data").is_some())
        .map(|m| id_of(&m["data"]))
        .collect()
}

/// A connect through `node` in a thread of its own (it is held until something comes).
fn connect_in_background(
    node: &Portico,
    device: &Account,
    client_id: &str,
) -> std::thread::JoinHandle<Vec<Value>> {
    let plain = node.plain;
    let device = device.clone();
    let message = connect_message(client_id);
    std::thread::spawn(move || bayeux_on(plain, &device, &message))
}

/// Waits for a background connect, at most `limit`.
fn answered_within(
    connect: std::thread::JoinHandle<Vec<Value>>,
    limit: Duration,
) -> (Vec<Value>, Duration) {
    let started = Instant::now();
    while !connect.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the held connect did not answer within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (connect.join().unwrap(), started.elapsed())
}

#[test]
fn three_nodes_share_the_registry_logins_and_device_notifications() {
    let Some(database) = Database::create() else {
        return;
    };
    let mut cluster = Cluster::start(database);

    // The registry: a change through node 2 routes on nodes 1 and 3 within 2 s.
    let shop = format!("http://{}", backend("shop", 0));
    cluster.admin(2, &["tenant", "add", "acme"]);
    for n in [1, 3] {
        let (status, _) = whoami(cluster.node(n), None);
        assert_ne!(status, 401, "no such web app yet on node {n}");
    }
    cluster.admin(
        2,
        &[
            "webapp",
            "add",
            "--name",
            "shop",
            "--backend",
            &shop,
            "--tenant",
            "acme",
            "--auth",
            "session",
        ],
    );
    for n in [1, 3] {
        let took = within(Duration::from_secs(2), || {
            whoami(cluster.node(n), None).0 == 401
        });
        assert!(took.is_some(), "the web app routes on node {n} within 2 s");
        println!("registry change through node 2 routed on node {n} after {took:?}");
    }

    // A login on node 1 is valid on node 3; a logout on node 1 ends it there within the
    // session cache time (5 s), and so does removing the user through node 2.
    cluster.add_user(1, "olga", "user", PASSWORD);
    let session = login(cluster.node(1), "olga");
    let (status, authorization) = whoami(cluster.node(3), Some(&session));
    assert_eq!(status, 200, "{authorization}");
    assert!(authorization.starts_with("Bearer "), "{authorization}");
    let url = cluster.node(1).plain_url("127.0.0.1", "/logout");
    let (host, cookie) = (
        format!("Host: {SHOP}"),
        format!("Cookie: SESSION={session}"),
    );
    let (status, _) = curl(&["-X", "POST", "-H", &host, "-H", &cookie, &url]);
    assert!(status == 303 || status == 302, "logout: {status}");
    assert!(
        within(Duration::from_secs(10), || {
            whoami(cluster.node(3), Some(&session)).0 == 401
        })
        .is_some(),
        "the logout on node 1 ends the session on node 3"
    );
    let session = login(cluster.node(1), "olga");
    assert_eq!(whoami(cluster.node(3), Some(&session)).0, 200);
    cluster.admin(2, &["user", "rm", "--tenant", "acme", "--name", "olga"]);
    assert!(
        within(Duration::from_secs(10), || {
            whoami(cluster.node(3), Some(&session)).0 == 401
        })
        .is_some(),
        "removing the user through node 2 ends the session on node 3"
    );

    // Bayeux: a device long-polling node 3 gets an operation created through node 1.
    cluster.add_user(1, "admin", "admin", PASSWORD);
    cluster.add_user(1, "device_pump", "device", PASSWORD);
    let operator = Account::new("acme", "admin", PASSWORD);
    let device = Account::new("acme", "device_pump", PASSWORD);
    let device_id = create_device_object(cluster.node(1), &device, "pump");
    let (a, b) = (cluster.node(1), cluster.node(3));
    let handshake = json!({
        "channel": "/meta/handshake", "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
    });
    let reply = bayeux(b, &device, &handshake);
    assert_eq!(reply[0]["successful"], true, "{reply:?}");
    let client_id = reply[0]["clientId"].as_str().unwrap().to_string();
    let subscribe = json!({
        "channel": "/meta/subscribe", "clientId": client_id,
        "subscription": format!("/{device_id}"),
    });
    assert_eq!(bayeux(b, &device, &subscribe)[0]["successful"], true);
    let first = bayeux(b, &device, &connect_message(&client_id));
    assert_eq!(first.last().unwrap()["successful"], true, "{first:?}");

    let held = connect_in_background(b, &device, &client_id);
    std::thread::sleep(Duration::from_millis(500));
    let created = Instant::now();
    let first_operation = create_operation(a, &operator, &device_id, "restart once");
    let (reply, _) = answered_within(held, Duration::from_secs(10));
    println!(
        "an operation created through node 1 (POST started) reached the device on node 3 \
         after {:?}",
        created.elapsed()
    );
    assert_eq!(operation_ids(&reply), vec![first_operation.clone()]);

    // Its next connect lands on node 1: same client id, the next operation, nothing twice.
    let held = connect_in_background(a, &device, &client_id);
    std::thread::sleep(Duration::from_millis(500));
    let second_operation = create_operation(cluster.node(2), &operator, &device_id, "again");
    let (reply, _) = answered_within(held, Duration::from_secs(10));
    assert_eq!(
        reply.last().unwrap()["successful"],
        true,
        "the session moved with the device: {reply:?}"
    );
    assert_eq!(operation_ids(&reply), vec![second_operation]);
    // And nothing more is waiting for it anywhere.
    let zero = json!({
        "channel": "/meta/connect", "clientId": client_id,
        "connectionType": "long-polling", "advice": {"timeout": 0},
    });
    for node in [a, b] {
        let reply = bayeux(node, &device, &zero);
        assert_eq!(reply.last().unwrap()["successful"], true, "{reply:?}");
        assert!(operation_ids(&reply).is_empty(), "{reply:?}");
    }

    // A node dies: an operation queued through node 2 while the device is away, then node 1
    // (which served the device last) killed as a crash would. The device's next connect,
    // on node 3, still gets it, once.
    let queued = create_operation(cluster.node(2), &operator, &device_id, "after the crash");
    drop(cluster.nodes.remove(0));
    let node_3 = &cluster.nodes[1];
    let mut delivered = Vec::new();
    let got = within(Duration::from_secs(10), || {
        let reply = bayeux(node_3, &device, &zero);
        delivered.extend(operation_ids(&reply));
        !delivered.is_empty()
    });
    assert!(
        got.is_some(),
        "the queued operation never reached the device after node 1 died"
    );
    assert_eq!(delivered, vec![queued], "the queued operation, once");
}
