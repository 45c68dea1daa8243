//! Filtered lists of a tenant's connection sessions and audit records, for the Remote
//! Services API's listings and CSV exports. Every query names the tenant; the filters are
//! bound parameters, never spliced into the SQL.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

use crate::error::StoreError;
use crate::remote_store::{audit_of, connection_of, SESSION_COLUMNS};
use crate::{AuditRecord, ConnectionSessionRecord, Store};

/// Which of a tenant's connection sessions to list (newest first). Unset fields do not
/// filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFilter {
    /// Only the sessions not ended (by the store's record; timeouts are applied first).
    pub open_only: bool,
    pub user: Option<String>,
    pub device: Option<String>,
    pub application: Option<String>,
    /// Started at or after.
    pub since_ms: Option<i64>,
    /// Started before.
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// Which of a tenant's audit records to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: i64,
}

enum Value {
    Text(String),
    Int(i64),
}

/// `WHERE tenant = $1 AND …` with its values in order.
struct Conditions {
    sql: String,
    values: Vec<Value>,
}

impl Conditions {
    fn new(tenant: &str) -> Conditions {
        Conditions {
            sql: " WHERE tenant = $1".into(),
            values: vec![Value::Text(tenant.into())],
        }
    }

    /// Adds `AND {column} {op} $n`; `column` and `op` are this module's constants.
    fn and(&mut self, column: &str, op: &str, value: Option<Value>) {
        if let Some(value) = value {
            self.values.push(value);
            self.sql
                .push_str(&format!(" AND {column} {op} ${}", self.values.len()));
        }
    }

    fn placeholder_for(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    fn bind<'q>(
        self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for value in self.values {
            query = match value {
                Value::Text(s) => query.bind(s),
                Value::Int(i) => query.bind(i),
            };
        }
        query
    }
}

impl Store {
    /// The tenant's connection sessions that pass `filter`, newest first.
    pub async fn connection_sessions_where(
        &self,
        tenant: &str,
        filter: &ConnectionFilter,
    ) -> Result<Vec<ConnectionSessionRecord>, StoreError> {
        let mut c = Conditions::new(tenant);
        if filter.open_only {
            c.sql.push_str(" AND ended_ms IS NULL");
        }
        c.and("user_name", "=", filter.user.clone().map(Value::Text));
        c.and("device", "=", filter.device.clone().map(Value::Text));
        c.and(
            "application",
            "=",
            filter.application.clone().map(Value::Text),
        );
        c.and("started_ms", ">=", filter.since_ms.map(Value::Int));
        c.and("started_ms", "<", filter.until_ms.map(Value::Int));
        let limit = c.placeholder_for(Value::Int(filter.limit));
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM rs_connection_sessions{} ORDER BY started_ms DESC, id LIMIT {limit}",
            c.sql
        );
        let rows = c.bind(sqlx::query(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .iter()
            .map(connection_of)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The tenant's audit records that pass `filter`, newest first.
    pub async fn audit_where(
        &self,
        tenant: &str,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut c = Conditions::new(tenant);
        c.and("actor", "=", filter.actor.clone().map(Value::Text));
        c.and("action", "=", filter.action.clone().map(Value::Text));
        let limit = c.placeholder_for(Value::Int(filter.limit));
        let sql = format!(
            "SELECT tenant, id, at_ms, actor, action, object, detail FROM rs_audit{} ORDER BY at_ms DESC, id DESC LIMIT {limit}",
            c.sql
        );
        let rows = c.bind(sqlx::query(&sql)).fetch_all(self.pool()).await?;
        Ok(rows
            .iter()
            .map(audit_of)
            .collect::<Result<_, sqlx::Error>>()?)
    }
}
