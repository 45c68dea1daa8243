//! The device data of Device Connectivity (migration `0006_device_data.sql`) as [`Store`]
//! methods: managed objects and their external ids here; measurements, events and alarms
//! in `records`; operations and new device requests in `operations`.
//!
//! Every query names the tenant. The one exception is
//! [`Store::new_device_requests_by_serial`], which the bootstrap user (who belongs to no
//! device tenant) needs to find the tenant that registered a serial. Who may do what is
//! decided by the REST API in `portico-realtime`; this module keeps the records.
//!
//! Documents are JSON objects ([`Fragments`]) without the fields the server owns; updates
//! merge top-level fragments, a `null` fragment removing the fragment (Cumulocity's
//! semantics). Lists come in a stable order and are paged with [`Page`].

mod operations;
mod records;

pub use operations::{
    NewDeviceRequestRecord, NewDeviceStatus, OperationChange, OperationFilter, OperationRecord,
    OperationStatus, OperationUpdate,
};
pub use records::{AlarmChange, AlarmFilter, AlarmRecord, DataFilter, DataKind, DataRecord};

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::StoreError;
use crate::{Backend, Store};

type SqlResult<T> = std::result::Result<T, sqlx::Error>;

/// A JSON object: the fragments of a document.
pub type Fragments = Map<String, Value>;

/// Which slice of a list to return: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl Page {
    pub fn all() -> Page {
        Page {
            offset: 0,
            limit: i64::MAX,
        }
    }
}

/// A managed object: a device, an agent, an asset…
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedObjectRecord {
    pub id: i64,
    pub tenant: String,
    /// The user that created it.
    pub owner: String,
    /// The document's `type` ('' when it has none), kept for queries.
    pub object_type: String,
    /// The document's `name` ('' when it has none).
    pub name: String,
    pub document: Fragments,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a managed object list is narrowed to; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedObjectFilter {
    pub object_type: Option<String>,
    /// A top-level fragment the object must have (`c8y_IsDevice`…).
    pub fragment: Option<String>,
    pub owner: Option<String>,
}

impl ManagedObjectFilter {
    fn clauses(&self, tenant: &str) -> Where {
        let mut w = Where::tenant(tenant);
        if let Some(t) = &self.object_type {
            w.push("type = ?", Bind::Text(t.clone()));
        }
        if let Some(owner) = &self.owner {
            w.push("owner = ?", Bind::Text(owner.clone()));
        }
        if let Some(fragment) = &self.fragment {
            w.push(
                "id IN (SELECT f.object_id FROM dc_fragments f WHERE f.tenant = dc_managed_objects.tenant AND f.fragment = ?)",
                Bind::Text(fragment.clone()),
            );
        }
        w
    }
}

/// An external id (a serial number, an IMEI…) naming a managed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdRecord {
    pub tenant: String,
    pub id_type: String,
    pub external_id: String,
    pub object_id: i64,
    pub created_ms: i64,
}

pub(crate) fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

/// The JSON object stored in a document column.
pub(crate) fn document_of(row: &AnyRow) -> SqlResult<Fragments> {
    let text: String = row.try_get("document")?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(corrupt(
            "a document in the database is not an object".into(),
        )),
        Err(e) => Err(corrupt(format!("a document in the database: {e}"))),
    }
}

pub(crate) fn document_text(document: &Fragments) -> String {
    Value::Object(document.clone()).to_string()
}

/// `document` with `changes` merged at the top level: a fragment is replaced, and removed
/// when its new value is `null`.
pub fn merge_fragments(document: &mut Fragments, changes: &Fragments) {
    for (key, value) in changes {
        if value.is_null() {
            document.remove(key);
        } else {
            document.insert(key.clone(), value.clone());
        }
    }
}

/// A value bound to a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// A `WHERE` clause built from optional filters, its `$n` placeholders numbered in the
/// order they appear (SQLite numbers them by appearance).
#[derive(Debug, Default)]
pub(crate) struct Where {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    pub(crate) fn tenant(tenant: &str) -> Where {
        let mut w = Where::default();
        w.push("tenant = ?", Bind::Text(tenant.into()));
        w
    }

    /// Adds `clause`, whose one `?` is replaced by the next placeholder.
    pub(crate) fn push(&mut self, clause: &str, bind: Bind) {
        self.binds.push(bind);
        let n = self.binds.len();
        self.clauses.push(clause.replacen('?', &format!("${n}"), 1));
    }

    /// The `WHERE …` text.
    pub(crate) fn sql(&self) -> String {
        format!("WHERE {}", self.clauses.join(" AND "))
    }

    /// ` LIMIT $n OFFSET $m`, numbered after the clauses' placeholders; goes with
    /// `Some(page)` in [`Where::query`].
    pub(crate) fn page_sql(&self) -> String {
        let n = self.binds.len();
        format!(" LIMIT ${} OFFSET ${}", n + 1, n + 2)
    }

    pub(crate) fn query<'q>(
        &self,
        sql: &'q str,
        page: Option<Page>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        let mut query = sqlx::query(sql);
        for bind in &self.binds {
            query = match bind {
                Bind::Text(s) => query.bind(s.clone()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        if let Some(page) = page {
            query = query.bind(page.limit.max(0)).bind(page.offset.max(0));
        }
        query
    }
}

const OBJECT_COLUMNS: &str = "id, tenant, owner, type, name, document, created_ms, updated_ms";

fn object_of(row: &AnyRow) -> SqlResult<ManagedObjectRecord> {
    Ok(ManagedObjectRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        owner: row.try_get("owner")?,
        object_type: row.try_get("type")?,
        name: row.try_get("name")?,
        document: document_of(row)?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// A string fragment of `document`, or ''.
fn text_fragment(document: &Fragments, key: &str) -> String {
    document
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Store {
    /// A transaction for a device data write: on SQLite it takes the write lock at once,
    /// so that a writer that reads first cannot fail to upgrade its lock.
    pub(crate) async fn device_tx(&self) -> SqlResult<Transaction<'static, Any>> {
        match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool().begin().await,
        }
    }

    /// The next id of the counter shared by every tenant and kind. Taken in a statement
    /// of its own, so the counter row is locked only for that statement, not for the
    /// writer's whole transaction; an id whose insert then fails is simply never used.
    pub(crate) async fn next_device_id(&self) -> SqlResult<i64> {
        sqlx::query_scalar(
            "UPDATE dc_ids SET next_id = next_id + 1 WHERE id = 1 RETURNING next_id - 1",
        )
        .fetch_one(self.pool())
        .await
    }

    /// Stores a new managed object of `owner` with a fresh id.
    pub async fn create_managed_object(
        &self,
        tenant: &str,
        owner: &str,
        document: &Fragments,
        now_ms: i64,
    ) -> Result<ManagedObjectRecord, StoreError> {
        let id = self.next_device_id().await?;
        let mut tx = self.device_tx().await?;
        let record = ManagedObjectRecord {
            id,
            tenant: tenant.into(),
            owner: owner.into(),
            object_type: text_fragment(document, "type"),
            name: text_fragment(document, "name"),
            document: document.clone(),
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        sqlx::query(&format!(
            "INSERT INTO dc_managed_objects ({OBJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(id)
        .bind(tenant)
        .bind(owner)
        .bind(&record.object_type)
        .bind(&record.name)
        .bind(document_text(document))
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        write_fragments(&mut tx, tenant, id, document).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn managed_object(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<ManagedObjectRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {OBJECT_COLUMNS} FROM dc_managed_objects WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(object_of).transpose()?)
    }

    /// The tenant's managed objects matching `filter`, by id.
    pub async fn managed_objects(
        &self,
        tenant: &str,
        filter: &ManagedObjectFilter,
        page: Page,
    ) -> Result<Vec<ManagedObjectRecord>, StoreError> {
        let w = filter.clauses(tenant);
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM dc_managed_objects {} ORDER BY id{}",
            w.sql(),
            w.page_sql()
        );
        let rows = w.query(&sql, Some(page)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(object_of).collect::<SqlResult<_>>()?)
    }

    /// How many of the tenant's managed objects match `filter`.
    pub async fn count_managed_objects(
        &self,
        tenant: &str,
        filter: &ManagedObjectFilter,
    ) -> Result<i64, StoreError> {
        self.count_where("dc_managed_objects", &filter.clauses(tenant))
            .await
    }

    /// `SELECT COUNT(*)` of `table` (one of this module's tables, never input) under `w`.
    pub(crate) async fn count_where(&self, table: &str, w: &Where) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {table} {}", w.sql());
        let row = w.query(&sql, None).fetch_one(self.pool()).await?;
        Ok(row.try_get("n")?)
    }

    /// Merges `changes` into the object's fragments (`null` removes one), in one
    /// transaction so that concurrent updates of different fragments both stay.
    /// `None` when the tenant has no such object.
    pub async fn update_managed_object(
        &self,
        tenant: &str,
        id: i64,
        changes: &Fragments,
        now_ms: i64,
    ) -> Result<Option<ManagedObjectRecord>, StoreError> {
        let mut tx = self.device_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {OBJECT_COLUMNS} FROM dc_managed_objects WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut record) = row.as_ref().map(object_of).transpose()? else {
            return Ok(None);
        };
        merge_fragments(&mut record.document, changes);
        record.object_type = text_fragment(&record.document, "type");
        record.name = text_fragment(&record.document, "name");
        record.updated_ms = now_ms;
        sqlx::query(
            "UPDATE dc_managed_objects SET type = $1, name = $2, document = $3, updated_ms = $4 WHERE tenant = $5 AND id = $6",
        )
        .bind(&record.object_type)
        .bind(&record.name)
        .bind(document_text(&record.document))
        .bind(now_ms)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM dc_fragments WHERE tenant = $1 AND object_id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_fragments(&mut tx, tenant, id, &record.document).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    // ---- external ids ---------------------------------------------------------------

    /// Names object `object_id` by (`id_type`, `external_id`); the pair is unique in the
    /// tenant and the object must exist.
    pub async fn add_external_id(&self, record: &ExternalIdRecord) -> Result<(), StoreError> {
        let mut tx = self.device_tx().await?;
        let object: Option<i64> =
            sqlx::query_scalar("SELECT id FROM dc_managed_objects WHERE tenant = $1 AND id = $2")
                .bind(&record.tenant)
                .bind(record.object_id)
                .fetch_optional(&mut *tx)
                .await?;
        if object.is_none() {
            return Err(StoreError::NotFound {
                kind: "managed object",
                key: format!("{}/{}", record.tenant, record.object_id),
            });
        }
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT object_id FROM dc_external_ids WHERE tenant = $1 AND type = $2 AND external_id = $3",
        )
        .bind(&record.tenant)
        .bind(&record.id_type)
        .bind(&record.external_id)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::Exists {
                kind: "external id",
                key: format!("{}/{}", record.id_type, record.external_id),
            });
        }
        sqlx::query(
            "INSERT INTO dc_external_ids (tenant, type, external_id, object_id, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&record.tenant)
        .bind(&record.id_type)
        .bind(&record.external_id)
        .bind(record.object_id)
        .bind(record.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn external_id(
        &self,
        tenant: &str,
        id_type: &str,
        external_id: &str,
    ) -> Result<Option<ExternalIdRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT tenant, type, external_id, object_id, created_ms FROM dc_external_ids WHERE tenant = $1 AND type = $2 AND external_id = $3",
        )
        .bind(tenant)
        .bind(id_type)
        .bind(external_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(external_id_of).transpose()?)
    }

    /// The external ids naming one object, by type then id.
    pub async fn external_ids_of(
        &self,
        tenant: &str,
        object_id: i64,
    ) -> Result<Vec<ExternalIdRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, type, external_id, object_id, created_ms FROM dc_external_ids WHERE tenant = $1 AND object_id = $2 ORDER BY type, external_id",
        )
        .bind(tenant)
        .bind(object_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(external_id_of).collect::<SqlResult<_>>()?)
    }
}

fn external_id_of(row: &AnyRow) -> SqlResult<ExternalIdRecord> {
    Ok(ExternalIdRecord {
        tenant: row.try_get("tenant")?,
        id_type: row.try_get("type")?,
        external_id: row.try_get("external_id")?,
        object_id: row.try_get("object_id")?,
        created_ms: row.try_get("created_ms")?,
    })
}

/// Records the top-level fragment names of object `id` for `fragmentType` queries.
async fn write_fragments(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    id: i64,
    document: &Fragments,
) -> SqlResult<()> {
    for name in document.keys() {
        sqlx::query("INSERT INTO dc_fragments (tenant, object_id, fragment) VALUES ($1, $2, $3)")
            .bind(tenant)
            .bind(id)
            .bind(name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
