//! Measurements, events and alarms: what devices report about a source (a managed
//! object). Measurements come oldest first, events and alarms newest first, as in
//! Cumulocity; ties are broken by id so that paging is stable.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{document_of, document_text, merge_fragments, Bind, Fragments, Page, SqlResult, Where};
use crate::error::StoreError;
use crate::Store;

/// Measurements and events have the same shape; this names the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Measurement,
    Event,
}

impl DataKind {
    fn table(self) -> &'static str {
        match self {
            DataKind::Measurement => "dc_measurements",
            DataKind::Event => "dc_events",
        }
    }

    fn order(self) -> &'static str {
        match self {
            DataKind::Measurement => "ORDER BY time_ms, id",
            DataKind::Event => "ORDER BY time_ms DESC, id DESC",
        }
    }
}

/// A measurement or an event.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRecord {
    pub id: i64,
    pub tenant: String,
    /// The managed object it is about.
    pub source: i64,
    pub data_type: String,
    pub time_ms: i64,
    pub document: Fragments,
    pub created_ms: i64,
}

/// What a measurement, event or alarm list is narrowed to; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFilter {
    pub source: Option<i64>,
    pub data_type: Option<String>,
    /// Inclusive.
    pub from_ms: Option<i64>,
    /// Exclusive.
    pub to_ms: Option<i64>,
    /// Only sources this user owns (a device sees its own data only).
    pub source_owner: Option<String>,
}

impl DataFilter {
    fn clauses(&self, tenant: &str) -> Where {
        let mut w = Where::tenant(tenant);
        if let Some(source) = self.source {
            w.push("source = ?", Bind::Int(source));
        }
        if let Some(t) = &self.data_type {
            w.push("type = ?", Bind::Text(t.clone()));
        }
        if let Some(from) = self.from_ms {
            w.push("time_ms >= ?", Bind::Int(from));
        }
        if let Some(to) = self.to_ms {
            w.push("time_ms < ?", Bind::Int(to));
        }
        if let Some(owner) = &self.source_owner {
            // `$1` is the tenant: `Where::tenant` binds it first.
            w.push(
                "source IN (SELECT o.id FROM dc_managed_objects o WHERE o.tenant = $1 AND o.owner = ?)",
                Bind::Text(owner.clone()),
            );
        }
        w
    }
}

/// An alarm: a condition of a source that an operator acknowledges or clears.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRecord {
    pub id: i64,
    pub tenant: String,
    pub source: i64,
    pub alarm_type: String,
    pub time_ms: i64,
    /// `ACTIVE`, `ACKNOWLEDGED` or `CLEARED`.
    pub status: String,
    /// `CRITICAL`, `MAJOR`, `MINOR` or `WARNING`.
    pub severity: String,
    pub document: Fragments,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmFilter {
    pub data: DataFilter,
    pub status: Option<String>,
    pub severity: Option<String>,
}

/// An alarm update: a new status or severity, and fragments to merge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmChange {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub fragments: Fragments,
}

const DATA_COLUMNS: &str = "id, tenant, source, type, time_ms, document, created_ms";
const ALARM_COLUMNS: &str =
    "id, tenant, source, type, time_ms, status, severity, document, created_ms, updated_ms";

fn data_of(row: &AnyRow) -> SqlResult<DataRecord> {
    Ok(DataRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        source: row.try_get("source")?,
        data_type: row.try_get("type")?,
        time_ms: row.try_get("time_ms")?,
        document: document_of(row)?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn alarm_of(row: &AnyRow) -> SqlResult<AlarmRecord> {
    Ok(AlarmRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        source: row.try_get("source")?,
        alarm_type: row.try_get("type")?,
        time_ms: row.try_get("time_ms")?,
        status: row.try_get("status")?,
        severity: row.try_get("severity")?,
        document: document_of(row)?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

impl AlarmFilter {
    fn clauses(&self, tenant: &str) -> Where {
        let mut w = self.data.clauses(tenant);
        if let Some(status) = &self.status {
            w.push("status = ?", Bind::Text(status.clone()));
        }
        if let Some(severity) = &self.severity {
            w.push("severity = ?", Bind::Text(severity.clone()));
        }
        w
    }
}

impl Store {
    /// Stores a measurement or an event with a fresh id. `record.id` is ignored.
    pub async fn add_data(
        &self,
        kind: DataKind,
        record: &DataRecord,
    ) -> Result<DataRecord, StoreError> {
        let id = self.next_device_id().await?;
        sqlx::query(&format!(
            "INSERT INTO {} ({DATA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            kind.table()
        ))
        .bind(id)
        .bind(&record.tenant)
        .bind(record.source)
        .bind(&record.data_type)
        .bind(record.time_ms)
        .bind(document_text(&record.document))
        .bind(record.created_ms)
        .execute(self.pool())
        .await?;
        Ok(DataRecord {
            id,
            ..record.clone()
        })
    }

    pub async fn data(
        &self,
        kind: DataKind,
        tenant: &str,
        id: i64,
    ) -> Result<Option<DataRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DATA_COLUMNS} FROM {} WHERE tenant = $1 AND id = $2",
            kind.table()
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(data_of).transpose()?)
    }

    pub async fn data_list(
        &self,
        kind: DataKind,
        tenant: &str,
        filter: &DataFilter,
        page: Page,
    ) -> Result<Vec<DataRecord>, StoreError> {
        let w = filter.clauses(tenant);
        let sql = format!(
            "SELECT {DATA_COLUMNS} FROM {} {} {}{}",
            kind.table(),
            w.sql(),
            kind.order(),
            w.page_sql()
        );
        let rows = w.query(&sql, Some(page)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(data_of).collect::<SqlResult<_>>()?)
    }

    pub async fn count_data(
        &self,
        kind: DataKind,
        tenant: &str,
        filter: &DataFilter,
    ) -> Result<i64, StoreError> {
        self.count_where(kind.table(), &filter.clauses(tenant))
            .await
    }

    // ---- alarms ---------------------------------------------------------------------

    /// Stores an alarm with a fresh id. `record.id` is ignored.
    pub async fn add_alarm(&self, record: &AlarmRecord) -> Result<AlarmRecord, StoreError> {
        let id = self.next_device_id().await?;
        sqlx::query(&format!(
            "INSERT INTO dc_alarms ({ALARM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(id)
        .bind(&record.tenant)
        .bind(record.source)
        .bind(&record.alarm_type)
        .bind(record.time_ms)
        .bind(&record.status)
        .bind(&record.severity)
        .bind(document_text(&record.document))
        .bind(record.created_ms)
        .bind(record.updated_ms)
        .execute(self.pool())
        .await?;
        Ok(AlarmRecord {
            id,
            ..record.clone()
        })
    }

    pub async fn alarm(&self, tenant: &str, id: i64) -> Result<Option<AlarmRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ALARM_COLUMNS} FROM dc_alarms WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(alarm_of).transpose()?)
    }

    pub async fn alarms(
        &self,
        tenant: &str,
        filter: &AlarmFilter,
        page: Page,
    ) -> Result<Vec<AlarmRecord>, StoreError> {
        let w = filter.clauses(tenant);
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM dc_alarms {} ORDER BY time_ms DESC, id DESC{}",
            w.sql(),
            w.page_sql()
        );
        let rows = w.query(&sql, Some(page)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(alarm_of).collect::<SqlResult<_>>()?)
    }

    pub async fn count_alarms(
        &self,
        tenant: &str,
        filter: &AlarmFilter,
    ) -> Result<i64, StoreError> {
        self.count_where("dc_alarms", &filter.clauses(tenant)).await
    }

    /// Applies `change` to an alarm in one transaction; `None` when there is no such alarm.
    pub async fn update_alarm(
        &self,
        tenant: &str,
        id: i64,
        change: &AlarmChange,
        now_ms: i64,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let mut tx = self.device_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {ALARM_COLUMNS} FROM dc_alarms WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut alarm) = row.as_ref().map(alarm_of).transpose()? else {
            return Ok(None);
        };
        if let Some(status) = &change.status {
            alarm.status = status.clone();
        }
        if let Some(severity) = &change.severity {
            alarm.severity = severity.clone();
        }
        merge_fragments(&mut alarm.document, &change.fragments);
        alarm.updated_ms = now_ms;
        sqlx::query(
            "UPDATE dc_alarms SET status = $1, severity = $2, document = $3, updated_ms = $4 WHERE tenant = $5 AND id = $6",
        )
        .bind(&alarm.status)
        .bind(&alarm.severity)
        .bind(document_text(&alarm.document))
        .bind(now_ms)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(alarm))
    }
}
