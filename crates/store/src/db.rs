//! Opening the database (SQLite or PostgreSQL through sqlx's `Any` driver), the
//! migrations, and the transactions every query runs in.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};
use tokio::sync::watch;

use crate::error::{mask_password, StoreError};
use crate::{Backend, Inner, Store};

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

impl Store {
    /// Opens `sqlite://PATH` (relative paths relative to the process's working
    /// directory; the parent directories and the file are created when missing; WAL and a
    /// busy timeout), `sqlite::memory:` (one connection, for tests), or
    /// `postgres://user:pass@host:port/db`, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            url: mask_password(url),
            source,
        };
        let (backend, connect_url, memory) = if url.starts_with("sqlite:") {
            let (connect_url, memory) =
                sqlite_url(url).map_err(|e| open_err(sqlx::Error::Io(e)))?;
            (Backend::Sqlite, connect_url, memory)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string(), false)
        } else {
            return Err(open_err(sqlx::Error::Configuration(
                "unsupported database URL: use sqlite://PATH or postgres://user:password@host:port/database".into(),
            )));
        };

        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        options = match backend {
            Backend::Postgres => options.max_connections(10),
            // An in-memory database lives as long as its one connection.
            Backend::Sqlite if memory => options
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            Backend::Sqlite => options
                .max_connections(8)
                .after_connect(|conn, _meta| Box::pin(async move { sqlite_session(conn).await })),
        };
        if !memory {
            // One plain connection first: the pool retries a refused connection until
            // its acquire timeout and then reports only "timed out", hiding the cause.
            let mut probe = AnyConnection::connect(&connect_url)
                .await
                .map_err(open_err)?;
            if backend == Backend::Sqlite {
                enable_wal(&mut probe).await.map_err(open_err)?;
            }
            probe.close().await.map_err(open_err)?;
        }
        let pool = options.connect(&connect_url).await.map_err(open_err)?;
        MIGRATOR.run(&pool).await?;

        let (changes, _) = watch::channel(0);
        let notices = crate::notices::Notices::start(backend, &connect_url);
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                changes,
                notices,
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.pool.execute("SELECT 1").await?;
        Ok(())
    }

    /// Bumped after every committed registry change made through this `Store`.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// A number that grows with every committed registry write made through any `Store`
    /// on this database, so that instances sharing it notice each other's changes.
    pub async fn registry_version(&self) -> Result<i64, StoreError> {
        let version: i64 =
            sqlx::query_scalar("SELECT registry_version FROM store_meta WHERE id = 1")
                .fetch_one(&self.inner.pool)
                .await?;
        Ok(version)
    }

    /// Closes the connections; later calls fail. Dropping every clone does the same
    /// lazily.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// After a committed registry write: bumps [`Store::changes`] and tells every node on
    /// the database with the `registry` notice. A notice that cannot be sent is logged;
    /// the other nodes then see the change by its version (or at their cache timeout).
    pub(crate) async fn registry_changed(&self) {
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
        if let Err(error) = self.notify(crate::REGISTRY_NOTICE, "").await {
            tracing::warn!(%error, "cannot tell the other nodes that the registry changed");
        }
    }

    /// A transaction for a registry write. Writers are serialized: on SQLite by
    /// `BEGIN IMMEDIATE`, on PostgreSQL by the row lock the first statement takes, so
    /// what a writer checks inside its transaction stays true until it commits.
    pub(crate) async fn write_tx(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let mut tx = match self.inner.backend {
            Backend::Sqlite => self.inner.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.inner.pool.begin().await?,
        };
        sqlx::query("UPDATE store_meta SET registry_version = registry_version + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// A transaction whose statements all see the same snapshot.
    pub(crate) async fn read_tx(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.inner.backend {
            // SQLite (WAL) keeps the snapshot of the first read until the end.
            Backend::Sqlite => self.inner.pool.begin().await,
            Backend::Postgres => {
                self.inner
                    .pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }
}

/// The URL sqlx connects with (`mode=rwc` added so that the file is created) and whether
/// it is an in-memory database; creates the file's parent directories.
fn sqlite_url(url: &str) -> std::io::Result<(String, bool)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, params) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path == ":memory:" {
        return Ok((url.to_string(), true));
    }
    if let Some(parent) = Path::new(&percent_decode(path)).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let has_mode = params.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    let connect_url = match (params, has_mode) {
        (_, true) => url.to_string(),
        (Some(_), false) => format!("{url}&mode=rwc"),
        (None, false) => format!("{url}?mode=rwc"),
    };
    Ok((connect_url, false))
}

/// `%XX` escapes decoded, as sqlx decodes the SQLite path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Per-connection SQLite settings.
async fn sqlite_session(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
        .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(())
}

/// Switches the file to WAL (a property of the file, so once is enough). The switch
/// needs an exclusive lock that the busy timeout does not wait for, so retry a little
/// when another process holds the file.
async fn enable_wal(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let mut attempt = 0;
    loop {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.execute("PRAGMA journal_mode = WAL").await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 50 => {
                tracing::debug!("cannot switch SQLite to WAL yet: {e}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/a/b/p.db", dir.path().display());
        let (u, mem) = sqlite_url(&url).unwrap();
        assert_eq!(u, format!("{url}?mode=rwc"));
        assert!(!mem);
        assert!(dir.path().join("a/b").is_dir());
        assert_eq!(
            sqlite_url("sqlite://x.db?mode=ro").unwrap().0,
            "sqlite://x.db?mode=ro"
        );
        assert!(sqlite_url("sqlite::memory:").unwrap().1);
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
    }
}
