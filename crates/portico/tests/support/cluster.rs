//! Several `portico serve` nodes of one cluster on one fresh PostgreSQL database (OPS-2).
//!
//! The database is made on the server `PORTICO_TEST_POSTGRES_URL` names (`scripts/test`
//! sets it) and dropped afterwards; without that variable the tests are skipped with a
//! message, unless `PORTICO_REQUIRE_POSTGRES=1`, which fails them.
//!
//! Every node serves TLS on the *same port* of its own loopback address (node 1 on
//! 127.0.0.1, node 2 on 127.0.0.2, …), as nodes behind a load balancer answer on one public
//! address: the tokens' issuer, which names that port, is the same on every node. They
//! share one certificate (the first node's development certificate) and one cluster secret.
//! Agents reach the nodes through HAProxy (`peers::haproxy`).

use super::{free_port, unix_ms, Portico};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

/// The PostgreSQL server to make the test database on, or `None` (and a message) to skip.
pub fn postgres_server() -> Option<String> {
    match std::env::var("PORTICO_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => Some(url),
        None if std::env::var("PORTICO_REQUIRE_POSTGRES").as_deref() == Ok("1") => panic!(
            "PORTICO_REQUIRE_POSTGRES=1 but PORTICO_TEST_POSTGRES_URL is not set: run the tests with \
             scripts/test, or set PORTICO_TEST_POSTGRES_URL=postgres://user@host:port/postgres"
        ),
        None => {
            println!("cluster test skipped: PORTICO_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A fresh database on the test server, dropped when this is dropped.
pub struct TestDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create(server: &str) -> TestDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("t_cluster_{}_{nanos}", std::process::id());
        psql(server, &format!("CREATE DATABASE {name}"));
        let (base, _) = server.rsplit_once('/').expect("a URL with a database path");
        TestDatabase {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Runs `sql` in this database; its output (unaligned, tuples only).
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.server.as_str(), "-qAtc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The cluster's nodes; a node taken out or killed is `None`. Dropped after its nodes.
pub struct ClusterNodes {
    pub nodes: Vec<Option<Portico>>,
    /// The TLS port every node serves on, each on its own loopback address.
    pub tls_port: u16,
    /// The shared certificate, its CA and the cluster secret.
    pub shared: tempfile::TempDir,
    pub db: TestDatabase,
}

const NODE_CONFIG: &str = r#"
[server]
listen = "{address}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
database = "{database}"

[tls]
cert = "{shared}/dev-cert.pem"
key = "{shared}/dev-key.pem"

[cluster]
node = "node-{n}"
link_listen = "127.0.0.1:{link}"
secret_file = "{shared}/cluster.secret"
"#;

/// The loopback address node `n` (from 1) serves TLS on.
pub fn node_ip(n: usize) -> String {
    format!("127.0.0.{n}")
}

impl ClusterNodes {
    /// Starts `count` nodes one after the other, node `first` first (it makes the
    /// database's tables, the signing key, the certificate the others use, and prints the
    /// admin token its `portico admin` runs with), or `None` when PostgreSQL is not
    /// configured for the tests.
    pub fn start(count: usize, first: usize) -> Option<ClusterNodes> {
        let server = postgres_server()?;
        let db = TestDatabase::create(&server);
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(
            shared.path().join("cluster.secret"),
            "a-test-cluster-secret-0123456789abcdef0123456789\n",
        )
        .unwrap();
        let mut cluster = ClusterNodes {
            nodes: Vec::new(),
            tls_port: 0,
            shared,
            db,
        };
        cluster.nodes = (0..count).map(|_| None).collect();
        let order = std::iter::once(first).chain((1..=count).filter(|n| *n != first));
        for n in order {
            let node = cluster.launch(n);
            cluster.tls_port = node.tls;
            cluster.nodes[n - 1] = Some(node);
        }
        Some(cluster)
    }

    fn launch(&self, n: usize) -> Portico {
        let (database, shared) = (
            self.db.url.clone(),
            self.shared.path().display().to_string(),
        );
        let fixed_port = self.tls_port;
        let mut node = Portico::launch(move |dir, (plain, tls, admin)| {
            // The first node picks the port; the others serve it on their own address.
            let port = if fixed_port == 0 { tls } else { fixed_port };
            let config = NODE_CONFIG
                .replace("{address}", &format!("{}:{port}", node_ip(n)))
                .replace("{plain}", &plain.to_string())
                .replace("{admin}", &admin.to_string())
                .replace("{database}", &database)
                .replace("{shared}", &shared)
                .replace("{n}", &n.to_string())
                .replace("{link}", &free_port().to_string());
            std::fs::write(dir.join("portico.toml"), config).unwrap();
            (vec!["--config".into(), "portico.toml".into()], Vec::new())
        });
        if self.tls_port != 0 {
            node.tls = self.tls_port;
        }
        node
    }

    /// Node `n` (from 1), which must be running.
    pub fn node(&self, n: usize) -> &Portico {
        self.nodes[n - 1].as_ref().expect("a running node")
    }

    /// Takes node `n` out of the set (to be owned elsewhere); it runs on.
    pub fn take(&mut self, n: usize) -> Portico {
        self.nodes[n - 1].take().expect("a running node")
    }

    /// Kills node `n` at once (SIGKILL: as a crash would).
    pub fn kill(&mut self, n: usize) {
        drop(self.nodes[n - 1].take());
    }

    /// Where node `n` serves TLS.
    pub fn tls_address(&self, n: usize) -> SocketAddr {
        format!("{}:{}", node_ip(n), self.tls_port).parse().unwrap()
    }

    /// The CA of the shared development certificate, for the agents.
    pub fn ca_file(&self) -> PathBuf {
        self.shared.path().join("dev-ca.pem")
    }

    /// The endpoints whose unexpired leases node `node` holds (`tenant/endpoint`), from the database.
    pub fn leases_of(&self, node: &str) -> Vec<String> {
        let now_ms = unix_ms();
        let out = self.db.query(&format!(
            "SELECT tenant || '/' || endpoint FROM rs_endpoint_leases \
             WHERE node = '{node}' AND expires_ms > {now_ms} ORDER BY 1"
        ));
        out.lines().map(String::from).collect()
    }
}

impl Drop for ClusterNodes {
    fn drop(&mut self) {
        // The nodes go before their database.
        self.nodes.clear();
    }
}
