//! The databases every store test runs against: a fresh SQLite file always, and a
//! fresh PostgreSQL database when `PORTICO_TEST_POSTGRES_URL` names a server (each
//! test creates its own database there, so tests run in parallel).
//! `PORTICO_REQUIRE_POSTGRES=1` without that URL fails the test.
#![allow(dead_code)]

use portico_store::{Api, Auth, Origin, Route, Store, Tenant, WebApp};
use sqlx::Connection;

pub struct TestDb {
    pub label: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// Server URL and database name, to drop the database afterwards.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn open(&self) -> Store {
        eprintln!("-- on {}", self.label);
        Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.label))
    }

    /// Closes `store` and drops the PostgreSQL database.
    pub async fn finish(self, store: Store) {
        store.close().await;
        if let Some((server, name)) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(server)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .expect("drop the test database");
        }
    }
}

/// The databases to run a test on; see the module documentation.
pub async fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/portico.db", dir.path().display());
    let mut out = vec![TestDb {
        label: "SQLite",
        url,
        _dir: Some(dir),
        postgres: None,
    }];
    match std::env::var("PORTICO_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        Some(server) => out.push(postgres_db(&server).await),
        None if std::env::var("PORTICO_REQUIRE_POSTGRES").as_deref() == Ok("1") => panic!(
            "PORTICO_REQUIRE_POSTGRES=1 but PORTICO_TEST_POSTGRES_URL is not set: run the tests with \
             scripts/test, or set PORTICO_TEST_POSTGRES_URL=postgres://user@host:port/postgres"
        ),
        None => println!("PostgreSQL skipped: PORTICO_TEST_POSTGRES_URL is not set; testing SQLite only"),
    }
    out
}

async fn postgres_db(server: &str) -> TestDb {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PORTICO_TEST_POSTGRES_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    conn.close().await.ok();
    TestDb {
        label: "PostgreSQL",
        url: with_database(server, &name),
        _dir: None,
        postgres: Some((server.into(), name)),
    }
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[start..].find('/').map_or(base.len(), |i| start + i);
    format!("{}/{name}{query}", &base[..host_end])
}

pub fn tenant(name: &str, origin: Origin) -> Tenant {
    Tenant {
        name: name.into(),
        origin,
    }
}

pub fn webapp(name: &str, provider: Option<&str>, tenants: &[&str], origin: Origin) -> WebApp {
    WebApp {
        name: name.into(),
        provider: provider.map(Into::into),
        backend: "http://127.0.0.1:9001".into(),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        cache_control: Some("no-cache".into()),
        websockets: vec!["/videostream".into(), "/events/**".into()],
        auth: Auth::None,
        scopes: Vec::new(),
        origin,
    }
}

pub fn api(
    name: &str,
    provider: Option<&str>,
    version: u32,
    tenants: &[&str],
    origin: Origin,
) -> Api {
    Api {
        name: name.into(),
        provider: provider.map(Into::into),
        version,
        backend: "http://127.0.0.1:9002/base".into(),
        routes: vec![
            Route {
                pattern: "/zeta/**".into(),
                methods: vec!["GET".into()],
            },
            Route {
                pattern: "/alpha".into(),
                methods: vec![],
            },
            Route {
                pattern: "/mid/{id}".into(),
                methods: vec!["POST".into(), "DELETE".into()],
            },
        ],
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        auth: Auth::None,
        scopes: Vec::new(),
        origin,
    }
}
