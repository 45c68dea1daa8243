//! The Remote Services tables (migration `0004_remote_services.sql`) as [`Store`] methods:
//! sites, devices and endpoints here; Protocol Applications, assignments and site members in
//! `access`; connection sessions and audit records in `sessions`.
//!
//! Every query names the tenant. The one exception is [`Store::claim_registration_code`],
//! which finds an endpoint by the hash of a secret only its holder knows and returns the
//! endpoint's tenant with it. What a caller may do is decided in `portico-relay`; this
//! module only keeps the records consistent (a device needs its site, a site with devices
//! or sub-sites cannot go, …). Remote Services writes do not touch the registry version.

mod access;
mod sessions;

pub use access::{ApplicationRecord, AssignmentRecord, MemberRecord, PortMapping};
pub(crate) use sessions::{audit_of, connection_of, SESSION_COLUMNS};
pub use sessions::{AuditRecord, ConnectionSessionRecord};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::StoreError;
use crate::{Backend, Store};

type SqlResult<T> = std::result::Result<T, sqlx::Error>;

/// A site of a tenant; sites form a tree through `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteRecord {
    pub tenant: String,
    pub name: String,
    pub parent: Option<String>,
    pub created_ms: i64,
}

/// A device (a machine in a factory network) in a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    pub tenant: String,
    pub name: String,
    pub site: String,
    pub description: String,
    pub created_ms: i64,
}

/// What an endpoint is bound to: a device endpoint to its device; a service endpoint to a
/// site or to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum EndpointBinding {
    Device(String),
    ServiceSite(String),
    ServiceUser(String),
}

impl EndpointBinding {
    /// `device` or `service`.
    pub fn kind(&self) -> &'static str {
        match self {
            EndpointBinding::Device(_) => "device",
            EndpointBinding::ServiceSite(_) | EndpointBinding::ServiceUser(_) => "service",
        }
    }
}

/// The life of an endpoint: made with a registration code (`Pending`), registered once
/// the code was traded for credentials, revoked for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Pending,
    Registered,
    Revoked,
}

impl EndpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Pending => "pending",
            EndpointState::Registered => "registered",
            EndpointState::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> SqlResult<EndpointState> {
        match s {
            "pending" => Ok(EndpointState::Pending),
            "registered" => Ok(EndpointState::Registered),
            "revoked" => Ok(EndpointState::Revoked),
            other => Err(corrupt(format!("endpoint state {other:?} in the database"))),
        }
    }
}

/// A Device or Service Endpoint (an agent) of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub tenant: String,
    pub name: String,
    pub binding: EndpointBinding,
    pub state: EndpointState,
    /// Hex SHA-256 of the one-time registration code; `None` once it was used.
    pub code_hash: Option<String>,
    pub code_expires_ms: Option<i64>,
    /// The OAuth client the endpoint got at registration.
    pub client_id: Option<String>,
    pub created_ms: i64,
    pub registered_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

fn not_found(kind: &'static str, tenant: &str, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        key: format!("{tenant}/{name}"),
    }
}

fn exists(kind: &'static str, tenant: &str, name: &str) -> StoreError {
    StoreError::Exists {
        kind,
        key: format!("{tenant}/{name}"),
    }
}

const SITE_COLUMNS: &str = "tenant, name, parent, created_ms";

fn site_of(row: &AnyRow) -> SqlResult<SiteRecord> {
    Ok(SiteRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        parent: row.try_get("parent")?,
        created_ms: row.try_get("created_ms")?,
    })
}

const DEVICE_COLUMNS: &str = "tenant, name, site, description, created_ms";

fn device_of(row: &AnyRow) -> SqlResult<DeviceRecord> {
    Ok(DeviceRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        site: row.try_get("site")?,
        description: row.try_get("description")?,
        created_ms: row.try_get("created_ms")?,
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "tenant, name, kind, device, site, user_name, state, code_hash, code_expires_ms, client_id, created_ms, registered_ms, revoked_ms";

pub(crate) fn endpoint_of(row: &AnyRow) -> SqlResult<EndpointRecord> {
    let kind: String = row.try_get("kind")?;
    let device: Option<String> = row.try_get("device")?;
    let site: Option<String> = row.try_get("site")?;
    let user: Option<String> = row.try_get("user_name")?;
    let binding = match (kind.as_str(), device, site, user) {
        ("device", Some(d), None, None) => EndpointBinding::Device(d),
        ("service", None, Some(s), None) => EndpointBinding::ServiceSite(s),
        ("service", None, None, Some(u)) => EndpointBinding::ServiceUser(u),
        _ => return Err(corrupt(format!("endpoint binding of kind {kind:?}"))),
    };
    let state: String = row.try_get("state")?;
    Ok(EndpointRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        binding,
        state: EndpointState::parse(&state)?,
        code_hash: row.try_get("code_hash")?,
        code_expires_ms: row.try_get("code_expires_ms")?,
        client_id: row.try_get("client_id")?,
        created_ms: row.try_get("created_ms")?,
        registered_ms: row.try_get("registered_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

/// Whether a row `name` exists in `table` for `tenant`. `table` is one of this module's
/// constants, never input.
async fn row_exists(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    tenant: &str,
    name: &str,
) -> SqlResult<bool> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM {table} WHERE tenant = $1 AND name = $2"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

impl Store {
    /// A transaction for a Remote Services write that reads first: on SQLite it takes the
    /// write lock at once, so that two writers do not both read and then fail to upgrade.
    pub(crate) async fn remote_tx(&self) -> SqlResult<Transaction<'static, Any>> {
        match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool().begin().await,
        }
    }

    // ---- sites ----------------------------------------------------------------------

    /// Adds a site; its parent, when named, must exist.
    pub async fn add_site(&self, site: &SiteRecord) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        if row_exists(&mut tx, "rs_sites", &site.tenant, &site.name).await? {
            return Err(exists("site", &site.tenant, &site.name));
        }
        if let Some(parent) = &site.parent {
            if !row_exists(&mut tx, "rs_sites", &site.tenant, parent).await? {
                return Err(not_found("site", &site.tenant, parent));
            }
        }
        sqlx::query(&format!(
            "INSERT INTO rs_sites ({SITE_COLUMNS}) VALUES ($1, $2, $3, $4)"
        ))
        .bind(&site.tenant)
        .bind(&site.name)
        .bind(site.parent.clone())
        .bind(site.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's sites by name.
    pub async fn sites(&self, tenant: &str) -> Result<Vec<SiteRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SITE_COLUMNS} FROM rs_sites WHERE tenant = $1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(site_of).collect::<SqlResult<_>>()?)
    }

    pub async fn site(&self, tenant: &str, name: &str) -> Result<Option<SiteRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SITE_COLUMNS} FROM rs_sites WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(site_of).transpose()?)
    }

    /// Removes an empty site (no sub-sites, devices or service endpoints) and its members.
    pub async fn remove_site(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        if !row_exists(&mut tx, "rs_sites", tenant, name).await? {
            return Err(not_found("site", tenant, name));
        }
        for (what, sql) in [
            ("sub-sites", "SELECT COUNT(*) FROM rs_sites WHERE tenant = $1 AND parent = $2"),
            ("devices", "SELECT COUNT(*) FROM rs_devices WHERE tenant = $1 AND site = $2"),
            (
                "service endpoints",
                "SELECT COUNT(*) FROM rs_endpoints WHERE tenant = $1 AND site = $2 AND state <> 'revoked'",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(tenant)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            if n > 0 {
                return Err(StoreError::Invalid(format!(
                    "site \"{name}\" still has {what}: remove them first"
                )));
            }
        }
        sqlx::query("DELETE FROM rs_site_members WHERE tenant = $1 AND site = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rs_sites WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- devices --------------------------------------------------------------------

    /// Adds a device to an existing site.
    pub async fn add_device(&self, device: &DeviceRecord) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        if row_exists(&mut tx, "rs_devices", &device.tenant, &device.name).await? {
            return Err(exists("device", &device.tenant, &device.name));
        }
        if !row_exists(&mut tx, "rs_sites", &device.tenant, &device.site).await? {
            return Err(not_found("site", &device.tenant, &device.site));
        }
        sqlx::query(&format!(
            "INSERT INTO rs_devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&device.tenant)
        .bind(&device.name)
        .bind(&device.site)
        .bind(&device.description)
        .bind(device.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's devices by name.
    pub async fn devices(&self, tenant: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM rs_devices WHERE tenant = $1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(device_of).collect::<SqlResult<_>>()?)
    }

    pub async fn device(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM rs_devices WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(device_of).transpose()?)
    }

    /// Removes a device without live endpoints, with its assignments.
    pub async fn remove_device(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        if !row_exists(&mut tx, "rs_devices", tenant, name).await? {
            return Err(not_found("device", tenant, name));
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM rs_endpoints WHERE tenant = $1 AND device = $2 AND state <> 'revoked'",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if live > 0 {
            return Err(StoreError::Invalid(format!(
                "device \"{name}\" still has an endpoint: revoke it first"
            )));
        }
        sqlx::query("DELETE FROM rs_assignments WHERE tenant = $1 AND device = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rs_devices WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- endpoints ------------------------------------------------------------------

    /// Adds an endpoint; what it is bound to (device, site) must exist.
    pub async fn add_endpoint(&self, endpoint: &EndpointRecord) -> Result<(), StoreError> {
        let t = &endpoint.tenant;
        let mut tx = self.remote_tx().await?;
        if row_exists(&mut tx, "rs_endpoints", t, &endpoint.name).await? {
            return Err(exists("endpoint", t, &endpoint.name));
        }
        let (device, site, user) = match &endpoint.binding {
            EndpointBinding::Device(d) => {
                if !row_exists(&mut tx, "rs_devices", t, d).await? {
                    return Err(not_found("device", t, d));
                }
                (Some(d.clone()), None, None)
            }
            EndpointBinding::ServiceSite(s) => {
                if !row_exists(&mut tx, "rs_sites", t, s).await? {
                    return Err(not_found("site", t, s));
                }
                (None, Some(s.clone()), None)
            }
            EndpointBinding::ServiceUser(u) => (None, None, Some(u.clone())),
        };
        sqlx::query(&format!(
            "INSERT INTO rs_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(t)
        .bind(&endpoint.name)
        .bind(endpoint.binding.kind())
        .bind(device)
        .bind(site)
        .bind(user)
        .bind(endpoint.state.as_str())
        .bind(endpoint.code_hash.clone())
        .bind(endpoint.code_expires_ms)
        .bind(endpoint.client_id.clone())
        .bind(endpoint.created_ms)
        .bind(endpoint.registered_ms)
        .bind(endpoint.revoked_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's endpoints by name.
    pub async fn endpoints(&self, tenant: &str) -> Result<Vec<EndpointRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM rs_endpoints WHERE tenant = $1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(endpoint_of).collect::<SqlResult<_>>()?)
    }

    /// The registered Device Endpoint of `device` (a revoked predecessor may share the
    /// binding), through the `(tenant, device)` index: the relay asks this for every stream.
    pub async fn registered_device_endpoint(
        &self,
        tenant: &str,
        device: &str,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM rs_endpoints \
             WHERE tenant = $1 AND device = $2 AND state = 'registered' ORDER BY name"
        ))
        .bind(tenant)
        .bind(device)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(endpoint_of).transpose()?)
    }

    pub async fn endpoint(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM rs_endpoints WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(endpoint_of).transpose()?)
    }

    /// Takes a registration code: the endpoint (pending, or registered and given a new code
    /// to register again) whose unexpired code hashes to `code_hash` loses its code, so that
    /// the code works once, and is returned (with its tenant). `None` when no such endpoint
    /// has that code, or it has expired.
    pub async fn claim_registration_code(
        &self,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let mut tx = self.remote_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM rs_endpoints WHERE code_hash = $1 AND state IN ('pending', 'registered') AND code_expires_ms > $2"
        ))
        .bind(code_hash)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut endpoint = endpoint_of(&row)?;
        let done = sqlx::query(
            "UPDATE rs_endpoints SET code_hash = NULL, code_expires_ms = NULL WHERE tenant = $1 AND name = $2 AND code_hash = $3",
        )
        .bind(&endpoint.tenant)
        .bind(&endpoint.name)
        .bind(code_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Another node took it between the read and the write (PostgreSQL).
            return Ok(None);
        }
        tx.commit().await?;
        endpoint.code_hash = None;
        endpoint.code_expires_ms = None;
        Ok(Some(endpoint))
    }

    /// Marks a pending endpoint registered with the OAuth client it was given; false when
    /// it is no longer pending (revoked meanwhile).
    pub async fn set_endpoint_registered(
        &self,
        tenant: &str,
        name: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE rs_endpoints SET state = 'registered', client_id = $3, registered_ms = $4 WHERE tenant = $1 AND name = $2 AND state = 'pending'",
        )
        .bind(tenant)
        .bind(name)
        .bind(client_id)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes an endpoint for good (its code, if unused, goes with it); returns the
    /// endpoint as it was. `NotFound` when there is none of that name.
    pub async fn revoke_endpoint(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<EndpointRecord, StoreError> {
        let mut tx = self.remote_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM rs_endpoints WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(not_found("endpoint", tenant, name));
        };
        let before = endpoint_of(&row)?;
        sqlx::query(
            "UPDATE rs_endpoints SET state = 'revoked', code_hash = NULL, code_expires_ms = NULL, revoked_ms = COALESCE(revoked_ms, $3) WHERE tenant = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }
}
