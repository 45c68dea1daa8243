//! Operations (commands for a device) and new device requests (the bootstrap of a
//! device that has no credentials yet).
//!
//! An operation's status moves PENDING → EXECUTING → SUCCESSFUL | FAILED, or PENDING →
//! FAILED when the device refuses it. Every status write is a compare-and-set on the
//! status that was checked (`… WHERE status = <checked>` in the one `UPDATE`), so of two
//! concurrent updates only one can make a given transition.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    corrupt, document_of, document_text, merge_fragments, Bind, Fragments, Page, SqlResult, Where,
};
use crate::error::StoreError;
use crate::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    Pending,
    Executing,
    Successful,
    Failed,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "PENDING",
            OperationStatus::Executing => "EXECUTING",
            OperationStatus::Successful => "SUCCESSFUL",
            OperationStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<OperationStatus> {
        match s {
            "PENDING" => Some(OperationStatus::Pending),
            "EXECUTING" => Some(OperationStatus::Executing),
            "SUCCESSFUL" => Some(OperationStatus::Successful),
            "FAILED" => Some(OperationStatus::Failed),
            _ => None,
        }
    }

    /// SUCCESSFUL and FAILED are final.
    pub fn is_final(self) -> bool {
        matches!(self, OperationStatus::Successful | OperationStatus::Failed)
    }

    /// Whether an operation in this status may be set to `next`. Repeating a status that
    /// is not final changes nothing and is allowed (a device retrying a lost answer);
    /// repeating a final one is not, so an operation is completed exactly once.
    pub fn can_become(self, next: OperationStatus) -> bool {
        use OperationStatus::*;
        matches!(
            (self, next),
            (Pending, Pending)
                | (Pending, Executing)
                | (Pending, Failed)
                | (Executing, Executing)
                | (Executing, Successful)
                | (Executing, Failed)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    pub id: i64,
    pub tenant: String,
    /// The managed object (device) the operation is for.
    pub device_id: i64,
    pub status: OperationStatus,
    pub failure_reason: Option<String>,
    pub document: Fragments,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    pub device_id: Option<i64>,
    pub status: Option<OperationStatus>,
    /// Only operations for devices this user owns.
    pub device_owner: Option<String>,
}

impl OperationFilter {
    fn clauses(&self, tenant: &str) -> Where {
        let mut w = Where::tenant(tenant);
        if let Some(device) = self.device_id {
            w.push("device_id = ?", Bind::Int(device));
        }
        if let Some(status) = self.status {
            w.push("status = ?", Bind::Text(status.as_str().into()));
        }
        if let Some(owner) = &self.device_owner {
            // `$1` is the tenant: `Where::tenant` binds it first.
            w.push(
                "device_id IN (SELECT o.id FROM dc_managed_objects o WHERE o.tenant = $1 AND o.owner = ?)",
                Bind::Text(owner.clone()),
            );
        }
        w
    }
}

/// An operation update: maybe a new status (with a failure reason), fragments to merge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationChange {
    pub status: Option<OperationStatus>,
    pub failure_reason: Option<String>,
    pub fragments: Fragments,
}

/// What [`Store::update_operation`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationUpdate {
    Updated(OperationRecord),
    /// The operation's status (`current`) may not become the one asked for.
    Illegal {
        current: OperationStatus,
    },
    NotFound,
}

const OPERATION_COLUMNS: &str =
    "id, tenant, device_id, status, failure_reason, document, created_ms, updated_ms";

fn operation_of(row: &AnyRow) -> SqlResult<OperationRecord> {
    let status: String = row.try_get("status")?;
    Ok(OperationRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        device_id: row.try_get("device_id")?,
        status: OperationStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("operation status {status:?} in the database")))?,
        failure_reason: row.try_get("failure_reason")?,
        document: document_of(row)?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// How often an update re-reads an operation that changed under it before giving up;
/// each retry means another writer succeeded, so this is only reached under heavy races.
const UPDATE_ATTEMPTS: usize = 5;

impl Store {
    /// Stores a PENDING operation for `device_id` with a fresh id.
    pub async fn create_operation(
        &self,
        tenant: &str,
        device_id: i64,
        document: &Fragments,
        now_ms: i64,
    ) -> Result<OperationRecord, StoreError> {
        let id = self.next_device_id().await?;
        sqlx::query(&format!(
            "INSERT INTO dc_operations ({OPERATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(id)
        .bind(tenant)
        .bind(device_id)
        .bind(OperationStatus::Pending.as_str())
        .bind(None::<String>)
        .bind(document_text(document))
        .bind(now_ms)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(OperationRecord {
            id,
            tenant: tenant.into(),
            device_id,
            status: OperationStatus::Pending,
            failure_reason: None,
            document: document.clone(),
            created_ms: now_ms,
            updated_ms: now_ms,
        })
    }

    pub async fn operation(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {OPERATION_COLUMNS} FROM dc_operations WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(operation_of).transpose()?)
    }

    /// The tenant's operations matching `filter`, oldest first.
    pub async fn operations(
        &self,
        tenant: &str,
        filter: &OperationFilter,
        page: Page,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let w = filter.clauses(tenant);
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM dc_operations {} ORDER BY id{}",
            w.sql(),
            w.page_sql()
        );
        let rows = w.query(&sql, Some(page)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(operation_of).collect::<SqlResult<_>>()?)
    }

    pub async fn count_operations(
        &self,
        tenant: &str,
        filter: &OperationFilter,
    ) -> Result<i64, StoreError> {
        self.count_where("dc_operations", &filter.clauses(tenant))
            .await
    }

    /// Applies `change` when the operation's status may become the one asked for. The
    /// write is conditional on the status that was checked, so a concurrent update that
    /// got there first makes this one re-check against the new status.
    pub async fn update_operation(
        &self,
        tenant: &str,
        id: i64,
        change: &OperationChange,
        now_ms: i64,
    ) -> Result<OperationUpdate, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(mut op) = self.operation(tenant, id).await? else {
                return Ok(OperationUpdate::NotFound);
            };
            let checked = op.status;
            if let Some(next) = change.status {
                if !checked.can_become(next) {
                    return Ok(OperationUpdate::Illegal { current: checked });
                }
                op.status = next;
            }
            if change.failure_reason.is_some() {
                op.failure_reason = change.failure_reason.clone();
            }
            merge_fragments(&mut op.document, &change.fragments);
            op.updated_ms = now_ms;
            let done = sqlx::query(
                "UPDATE dc_operations SET status = $1, failure_reason = $2, document = $3, updated_ms = $4 \
                 WHERE tenant = $5 AND id = $6 AND status = $7",
            )
            .bind(op.status.as_str())
            .bind(op.failure_reason.clone())
            .bind(document_text(&op.document))
            .bind(now_ms)
            .bind(tenant)
            .bind(id)
            .bind(checked.as_str())
            .execute(self.pool())
            .await?;
            if done.rows_affected() == 1 {
                return Ok(OperationUpdate::Updated(op));
            }
        }
        Err(StoreError::Invalid(format!(
            "operation {id} keeps changing under concurrent updates; retry"
        )))
    }
}

// ---- new device requests ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewDeviceStatus {
    /// Registered by an operator; the device has not asked yet.
    WaitingForConnection,
    /// The device asked for credentials; an operator has to accept it.
    PendingAcceptance,
    /// Accepted: the device's next request gets credentials.
    Accepted,
}

impl NewDeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NewDeviceStatus::WaitingForConnection => "WAITING_FOR_CONNECTION",
            NewDeviceStatus::PendingAcceptance => "PENDING_ACCEPTANCE",
            NewDeviceStatus::Accepted => "ACCEPTED",
        }
    }

    pub fn parse(s: &str) -> Option<NewDeviceStatus> {
        match s {
            "WAITING_FOR_CONNECTION" => Some(NewDeviceStatus::WaitingForConnection),
            "PENDING_ACCEPTANCE" => Some(NewDeviceStatus::PendingAcceptance),
            "ACCEPTED" => Some(NewDeviceStatus::Accepted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceRequestRecord {
    pub tenant: String,
    /// The device's serial (its external id), the request's id.
    pub serial: String,
    pub status: NewDeviceStatus,
    /// The user that registered it.
    pub owner: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const REQUEST_COLUMNS: &str = "tenant, serial, status, owner, created_ms, updated_ms";

fn request_of(row: &AnyRow) -> SqlResult<NewDeviceRequestRecord> {
    let status: String = row.try_get("status")?;
    Ok(NewDeviceRequestRecord {
        tenant: row.try_get("tenant")?,
        serial: row.try_get("serial")?,
        status: NewDeviceStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("new device request status {status:?}")))?,
        owner: row.try_get("owner")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

impl Store {
    /// Registers a serial; one request per serial and tenant.
    pub async fn add_new_device_request(
        &self,
        record: &NewDeviceRequestRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.device_tx().await?;
        if self
            .new_device_request_in(&mut tx, &record.tenant, &record.serial)
            .await?
            .is_some()
        {
            return Err(StoreError::Exists {
                kind: "new device request",
                key: format!("{}/{}", record.tenant, record.serial),
            });
        }
        sqlx::query(&format!(
            "INSERT INTO dc_new_device_requests ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&record.tenant)
        .bind(&record.serial)
        .bind(record.status.as_str())
        .bind(&record.owner)
        .bind(record.created_ms)
        .bind(record.updated_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn new_device_request_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        tenant: &str,
        serial: &str,
    ) -> SqlResult<Option<NewDeviceRequestRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM dc_new_device_requests WHERE tenant = $1 AND serial = $2"
        ))
        .bind(tenant)
        .bind(serial)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(request_of).transpose()
    }

    pub async fn new_device_request(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<NewDeviceRequestRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM dc_new_device_requests WHERE tenant = $1 AND serial = $2"
        ))
        .bind(tenant)
        .bind(serial)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(request_of).transpose()?)
    }

    /// The tenant's requests, oldest first.
    pub async fn new_device_requests(
        &self,
        tenant: &str,
        page: Page,
    ) -> Result<Vec<NewDeviceRequestRecord>, StoreError> {
        let w = Where::tenant(tenant);
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM dc_new_device_requests {} ORDER BY created_ms, serial{}",
            w.sql(),
            w.page_sql()
        );
        let rows = w.query(&sql, Some(page)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(request_of).collect::<SqlResult<_>>()?)
    }

    pub async fn count_new_device_requests(&self, tenant: &str) -> Result<i64, StoreError> {
        self.count_where("dc_new_device_requests", &Where::tenant(tenant))
            .await
    }

    /// The requests for `serial` in every tenant: the bootstrap user knows only the serial.
    pub async fn new_device_requests_by_serial(
        &self,
        serial: &str,
    ) -> Result<Vec<NewDeviceRequestRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM dc_new_device_requests WHERE serial = $1 ORDER BY tenant"
        ))
        .bind(serial)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(request_of).collect::<SqlResult<_>>()?)
    }

    /// Sets a request's status; `None` when there is no such request.
    pub async fn set_new_device_request_status(
        &self,
        tenant: &str,
        serial: &str,
        status: NewDeviceStatus,
        now_ms: i64,
    ) -> Result<Option<NewDeviceRequestRecord>, StoreError> {
        let mut tx = self.device_tx().await?;
        sqlx::query(
            "UPDATE dc_new_device_requests SET status = $1, updated_ms = $2 WHERE tenant = $3 AND serial = $4",
        )
        .bind(status.as_str())
        .bind(now_ms)
        .bind(tenant)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
        let record = self.new_device_request_in(&mut tx, tenant, serial).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// A device asked for its credentials: WAITING_FOR_CONNECTION becomes
    /// PENDING_ACCEPTANCE (other statuses stay).
    pub async fn mark_new_device_request_seen(
        &self,
        tenant: &str,
        serial: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE dc_new_device_requests SET status = $1, updated_ms = $2 WHERE tenant = $3 AND serial = $4 AND status = $5",
        )
        .bind(NewDeviceStatus::PendingAcceptance.as_str())
        .bind(now_ms)
        .bind(tenant)
        .bind(serial)
        .bind(NewDeviceStatus::WaitingForConnection.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes the request when it is ACCEPTED, in one statement, so of two concurrent
    /// callers only one takes it. Whether this call took it.
    pub async fn take_accepted_new_device_request(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM dc_new_device_requests WHERE tenant = $1 AND serial = $2 AND status = $3",
        )
        .bind(tenant)
        .bind(serial)
        .bind(NewDeviceStatus::Accepted.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a request whatever its status; whether there was one.
    pub async fn remove_new_device_request(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM dc_new_device_requests WHERE tenant = $1 AND serial = $2")
                .bind(tenant)
                .bind(serial)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
