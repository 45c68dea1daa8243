//! The Bayeux notification tables (migration `0007_bayeux.sql`) as [`Store`] methods: the
//! log of published notifications and the persisted client sessions of each notification
//! endpoint (`operations`, `realtime`).
//!
//! Log entries and session rows name their tenant, and every query that reads or changes
//! one tenant's data filters by it. The exceptions are the engine's housekeeping, which
//! is per endpoint across tenants: restoring every session at start-up
//! ([`Store::bayeux_sessions`]), expiring sessions by age, pruning the log below a
//! sequence number, reading every new entry to offer it to the sessions a node holds
//! ([`Store::bayeux_log_after`], OPS-2), and loading a session by its client id, the
//! session's bearer secret, when its client's request lands on another node
//! ([`Store::bayeux_session`]).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::StoreError;
use crate::{Backend, Store};

type SqlResult<T> = std::result::Result<T, sqlx::Error>;

/// One published notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayeuxLogEntry {
    pub seq: i64,
    pub tenant: String,
    pub channel: String,
    /// The notification's `data`, as JSON text.
    pub data: String,
    pub created_ms: i64,
}

/// A client session as it is kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayeuxSessionRecord {
    pub endpoint: String,
    pub client_id: String,
    pub tenant: String,
    pub user: String,
    /// The user's role (`device` for a device's own user).
    pub role: String,
    /// The channel patterns the client subscribed to.
    pub subscriptions: Vec<String>,
    pub connect_timeout_ms: i64,
    pub last_seen_ms: i64,
    /// Every log entry up to this sequence number that the session wanted was handed out.
    pub cursor: i64,
    /// The highest sequence number of the last answer, handed out but not yet confirmed
    /// by the client's next connect (0: none). Entries after `cursor` up to this one were
    /// given to the client at `answered_ms`.
    pub answered_seq: i64,
    pub answered_ms: i64,
    /// The node serving the session (empty for a node alone).
    pub node: String,
}

/// The lazily saved part of a session: where it is in the log and when it last polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayeuxSessionPosition {
    pub client_id: String,
    pub tenant: String,
    pub last_seen_ms: i64,
    pub cursor: i64,
}

const SESSION_COLUMNS: &str = "endpoint, client_id, tenant, user_name, subscriptions, connect_timeout_ms, last_seen_ms, cursor_seq, role, answered_seq, answered_ms, node";

fn session_of(row: &AnyRow) -> SqlResult<BayeuxSessionRecord> {
    let subscriptions: String = row.try_get("subscriptions")?;
    Ok(BayeuxSessionRecord {
        endpoint: row.try_get("endpoint")?,
        client_id: row.try_get("client_id")?,
        tenant: row.try_get("tenant")?,
        user: row.try_get("user_name")?,
        subscriptions: serde_json::from_str(&subscriptions)
            .map_err(|e| sqlx::Error::Decode(format!("bayeux subscriptions: {e}").into()))?,
        connect_timeout_ms: row.try_get("connect_timeout_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        cursor: row.try_get("cursor_seq")?,
        role: row.try_get("role")?,
        answered_seq: row.try_get("answered_seq")?,
        answered_ms: row.try_get("answered_ms")?,
        node: row.try_get("node")?,
    })
}

fn entry_of(row: &AnyRow) -> SqlResult<BayeuxLogEntry> {
    Ok(BayeuxLogEntry {
        seq: row.try_get("seq")?,
        tenant: row.try_get("tenant")?,
        channel: row.try_get("channel")?,
        data: row.try_get("data")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    /// A transaction that writes the Bayeux tables. On SQLite `BEGIN IMMEDIATE` takes the
    /// write lock at once, so bumping the sequence never fails half-way as a deadlock.
    async fn bayeux_tx(&self) -> SqlResult<Transaction<'static, Any>> {
        match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool().begin().await,
        }
    }

    /// Appends a notification to `endpoint`'s log and returns its sequence number, which
    /// is larger than every earlier one of the endpoint (also across pruning).
    pub async fn bayeux_append(
        &self,
        endpoint: &str,
        tenant: &str,
        channel: &str,
        data: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.bayeux_tx().await?;
        sqlx::query("UPDATE bayeux_sequences SET last_seq = last_seq + 1 WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
        let seq: i64 =
            sqlx::query_scalar("SELECT last_seq FROM bayeux_sequences WHERE endpoint = $1")
                .bind(endpoint)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::Invalid(format!("no Bayeux endpoint {endpoint:?}")))?;
        sqlx::query(
            "INSERT INTO bayeux_log (endpoint, seq, tenant, channel, data, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(endpoint)
        .bind(seq)
        .bind(tenant)
        .bind(channel)
        .bind(data)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// The sequence number of `endpoint`'s latest notification (0 before the first).
    pub async fn bayeux_last_seq(&self, endpoint: &str) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM bayeux_sequences WHERE endpoint = $1")
                .bind(endpoint)
                .fetch_optional(self.pool())
                .await?;
        seq.ok_or_else(|| StoreError::Invalid(format!("no Bayeux endpoint {endpoint:?}")))
    }

    /// Up to `limit` of `tenant`'s notifications on `endpoint` after `after_seq`, oldest
    /// first.
    pub async fn bayeux_entries_after(
        &self,
        endpoint: &str,
        tenant: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<BayeuxLogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, tenant, channel, data, created_ms FROM bayeux_log \
             WHERE endpoint = $1 AND tenant = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(endpoint)
        .bind(tenant)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(entry_of).collect::<SqlResult<_>>()?)
    }

    /// Up to `limit` of `endpoint`'s notifications after `after_seq`, of every tenant,
    /// oldest first: what a node reads to offer other nodes' notifications to the sessions
    /// it holds (each entry goes only to sessions of its own tenant).
    pub async fn bayeux_log_after(
        &self,
        endpoint: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<BayeuxLogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, tenant, channel, data, created_ms FROM bayeux_log \
             WHERE endpoint = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(endpoint)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(entry_of).collect::<SqlResult<_>>()?)
    }

    /// The lowest saved cursor among `endpoint`'s sessions last seen at or after
    /// `seen_since_ms`, whichever node serves them (None when there are none): no node
    /// needs a log entry at or below it.
    pub async fn bayeux_lowest_cursor(
        &self,
        endpoint: &str,
        seen_since_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let lowest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(cursor_seq) FROM bayeux_sessions WHERE endpoint = $1 AND last_seen_ms >= $2",
        )
        .bind(endpoint)
        .bind(seen_since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(lowest)
    }

    /// Deletes `endpoint`'s log entries up to `up_to_seq` and those created before
    /// `created_before_ms`; returns how many went.
    pub async fn bayeux_prune_log(
        &self,
        endpoint: &str,
        up_to_seq: i64,
        created_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM bayeux_log WHERE endpoint = $1 AND (seq <= $2 OR created_ms < $3)",
        )
        .bind(endpoint)
        .bind(up_to_seq)
        .bind(created_before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Creates or replaces a session row.
    pub async fn bayeux_save_session(
        &self,
        session: &BayeuxSessionRecord,
    ) -> Result<(), StoreError> {
        let subscriptions = serde_json::to_string(&session.subscriptions)
            .map_err(|e| StoreError::Invalid(format!("bayeux subscriptions: {e}")))?;
        sqlx::query(&format!(
            "INSERT INTO bayeux_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (endpoint, client_id) DO UPDATE SET subscriptions = excluded.subscriptions, \
             connect_timeout_ms = excluded.connect_timeout_ms, last_seen_ms = excluded.last_seen_ms, \
             cursor_seq = excluded.cursor_seq, answered_seq = excluded.answered_seq, \
             answered_ms = excluded.answered_ms, node = excluded.node \
             WHERE bayeux_sessions.tenant = excluded.tenant"
        ))
        .bind(&session.endpoint)
        .bind(&session.client_id)
        .bind(&session.tenant)
        .bind(&session.user)
        .bind(subscriptions)
        .bind(session.connect_timeout_ms)
        .bind(session.last_seen_ms)
        .bind(session.cursor)
        .bind(&session.role)
        .bind(session.answered_seq)
        .bind(session.answered_ms)
        .bind(&session.node)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Saves many sessions' positions in one transaction; rows that no longer exist are
    /// skipped.
    pub async fn bayeux_save_positions(
        &self,
        endpoint: &str,
        positions: &[BayeuxSessionPosition],
    ) -> Result<(), StoreError> {
        self.bayeux_save_node_positions(endpoint, "", positions)
            .await
    }

    /// [`Store::bayeux_save_positions`] of the sessions node `node` serves: rows another
    /// node took over are skipped.
    pub async fn bayeux_save_node_positions(
        &self,
        endpoint: &str,
        node: &str,
        positions: &[BayeuxSessionPosition],
    ) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut tx = self.bayeux_tx().await?;
        for p in positions {
            sqlx::query(
                "UPDATE bayeux_sessions SET last_seen_ms = $1, cursor_seq = $2 \
                 WHERE endpoint = $3 AND tenant = $4 AND client_id = $5 AND node = $6",
            )
            .bind(p.last_seen_ms)
            .bind(p.cursor)
            .bind(endpoint)
            .bind(&p.tenant)
            .bind(&p.client_id)
            .bind(node)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes one session of `tenant`.
    pub async fn bayeux_delete_session(
        &self,
        endpoint: &str,
        tenant: &str,
        client_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM bayeux_sessions WHERE endpoint = $1 AND tenant = $2 AND client_id = $3",
        )
        .bind(endpoint)
        .bind(tenant)
        .bind(client_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes `endpoint`'s sessions last seen before `seen_before_ms` (expired while the
    /// process was down); returns how many went.
    pub async fn bayeux_delete_stale_sessions(
        &self,
        endpoint: &str,
        seen_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM bayeux_sessions WHERE endpoint = $1 AND last_seen_ms < $2")
                .bind(endpoint)
                .bind(seen_before_ms)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    /// Every session of `endpoint`, of all tenants (restored at start-up).
    pub async fn bayeux_sessions(
        &self,
        endpoint: &str,
    ) -> Result<Vec<BayeuxSessionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM bayeux_sessions WHERE endpoint = $1 ORDER BY client_id"
        ))
        .bind(endpoint)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(session_of).collect::<SqlResult<_>>()?)
    }

    /// The session of `endpoint` with this client id, of whichever tenant: the client id
    /// is the session's bearer secret, and the tenant comes from the row.
    pub async fn bayeux_session(
        &self,
        endpoint: &str,
        client_id: &str,
    ) -> Result<Option<BayeuxSessionRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM bayeux_sessions WHERE endpoint = $1 AND client_id = $2"
        ))
        .bind(endpoint)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(session_of).transpose()?)
    }

    /// The client ids of `endpoint`'s sessions that node `node` serves.
    pub async fn bayeux_node_sessions(
        &self,
        endpoint: &str,
        node: &str,
    ) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT client_id FROM bayeux_sessions WHERE endpoint = $1 AND node = $2",
        )
        .bind(endpoint)
        .bind(node)
        .fetch_all(self.pool())
        .await?;
        Ok(ids)
    }

    /// `tenant`'s sessions on `endpoint`.
    pub async fn bayeux_tenant_sessions(
        &self,
        endpoint: &str,
        tenant: &str,
    ) -> Result<Vec<BayeuxSessionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM bayeux_sessions WHERE endpoint = $1 AND tenant = $2 ORDER BY client_id"
        ))
        .bind(endpoint)
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(session_of).collect::<SqlResult<_>>()?)
    }
}
