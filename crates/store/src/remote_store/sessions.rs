//! Connection sessions (RS-8) and the audit trail.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::SqlResult;
use crate::error::StoreError;
use crate::Store;

/// A connection session: a user connected a device's Protocol Application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionSessionRecord {
    pub tenant: String,
    pub id: String,
    pub user_name: String,
    pub device: String,
    pub application: String,
    pub started_ms: i64,
    /// When the session times out: started plus the application's session timeout.
    pub ends_ms: i64,
    pub ended_ms: Option<i64>,
    /// `ended`, `timeout`, `revoked` or `unassigned`.
    pub end_reason: Option<String>,
    /// Bytes from the service side to the device side.
    pub bytes_up: i64,
    /// Bytes from the device side to the service side.
    pub bytes_down: i64,
}

impl ConnectionSessionRecord {
    /// Open at `now_ms`: not ended and not past its timeout.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.ended_ms.is_none() && now_ms < self.ends_ms
    }
}

/// One entry of a tenant's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub tenant: String,
    pub id: String,
    pub at_ms: i64,
    /// The user or endpoint that acted.
    pub actor: String,
    /// E.g. `connection.open`, `endpoint.revoke`.
    pub action: String,
    /// What was acted on, e.g. `device/press-7`.
    pub object: String,
    pub detail: String,
}

pub(crate) const SESSION_COLUMNS: &str = "tenant, id, user_name, device, application, started_ms, ends_ms, ended_ms, end_reason, bytes_up, bytes_down";

pub(crate) fn connection_of(row: &AnyRow) -> SqlResult<ConnectionSessionRecord> {
    Ok(ConnectionSessionRecord {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        user_name: row.try_get("user_name")?,
        device: row.try_get("device")?,
        application: row.try_get("application")?,
        started_ms: row.try_get("started_ms")?,
        ends_ms: row.try_get("ends_ms")?,
        ended_ms: row.try_get("ended_ms")?,
        end_reason: row.try_get("end_reason")?,
        bytes_up: row.try_get("bytes_up")?,
        bytes_down: row.try_get("bytes_down")?,
    })
}

pub(crate) fn audit_of(row: &AnyRow) -> SqlResult<AuditRecord> {
    Ok(AuditRecord {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object: row.try_get("object")?,
        detail: row.try_get("detail")?,
    })
}

impl Store {
    // ---- connection sessions --------------------------------------------------------

    pub async fn add_connection_session(
        &self,
        s: &ConnectionSessionRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO rs_connection_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&s.tenant)
        .bind(&s.id)
        .bind(&s.user_name)
        .bind(&s.device)
        .bind(&s.application)
        .bind(s.started_ms)
        .bind(s.ends_ms)
        .bind(s.ended_ms)
        .bind(s.end_reason.clone())
        .bind(s.bytes_up)
        .bind(s.bytes_down)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn connection_session(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ConnectionSessionRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM rs_connection_sessions WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(connection_of).transpose()?)
    }

    /// The tenant's connection sessions, newest first; only the open ones when asked.
    pub async fn connection_sessions(
        &self,
        tenant: &str,
        open_only: bool,
    ) -> Result<Vec<ConnectionSessionRecord>, StoreError> {
        let filter = if open_only {
            " AND ended_ms IS NULL"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM rs_connection_sessions WHERE tenant = $1{filter} ORDER BY started_ms DESC, id"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(connection_of).collect::<SqlResult<_>>()?)
    }

    /// Ends an open connection session; false when it was unknown or had ended already.
    pub async fn end_connection_session(
        &self,
        tenant: &str,
        id: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE rs_connection_sessions SET ended_ms = $3, end_reason = $4 WHERE tenant = $1 AND id = $2 AND ended_ms IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends, with reason `timeout` and at their timeout, the tenant's open sessions whose
    /// timeout is at or before `now_ms`; returns them as ended.
    pub async fn expire_connection_sessions(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Vec<ConnectionSessionRecord>, StoreError> {
        let mut tx = self.remote_tx().await?;
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM rs_connection_sessions WHERE tenant = $1 AND ended_ms IS NULL AND ends_ms <= $2"
        ))
        .bind(tenant)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut expired: Vec<ConnectionSessionRecord> =
            rows.iter().map(connection_of).collect::<SqlResult<_>>()?;
        sqlx::query(
            "UPDATE rs_connection_sessions SET ended_ms = ends_ms, end_reason = 'timeout' WHERE tenant = $1 AND ended_ms IS NULL AND ends_ms <= $2",
        )
        .bind(tenant)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        for s in &mut expired {
            s.ended_ms = Some(s.ends_ms);
            s.end_reason = Some("timeout".into());
        }
        Ok(expired)
    }

    /// Adds to a session's byte counts (the relay reports them as streams close).
    pub async fn add_connection_bytes(
        &self,
        tenant: &str,
        id: &str,
        up: i64,
        down: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rs_connection_sessions SET bytes_up = bytes_up + $3, bytes_down = bytes_down + $4 WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(up)
        .bind(down)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // ---- audit ----------------------------------------------------------------------

    pub async fn add_audit(&self, a: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rs_audit (tenant, id, at_ms, actor, action, object, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.tenant)
        .bind(&a.id)
        .bind(a.at_ms)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.object)
        .bind(&a.detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The tenant's newest audit records, at most `limit`, newest first.
    pub async fn audit(&self, tenant: &str, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, id, at_ms, actor, action, object, detail FROM rs_audit WHERE tenant = $1 ORDER BY at_ms DESC, id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(audit_of).collect::<SqlResult<_>>()?)
    }
}
