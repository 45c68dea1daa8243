//! The Remote Services tables (migration `0004_remote_services.sql`) as [`Store`] methods:
//! sites, devices, endpoints, Protocol Applications, assignments, site members, connection
//! sessions and audit records.
//!
//! Every query names the tenant. The one exception is [`Store::claim_registration_code`],
//! which finds an endpoint by the hash of a secret only its holder knows and returns the
//! endpoint's tenant with it. What a caller may do is decided in `portico-relay`; this
//! module only keeps the records consistent (a device needs its site, a site with devices
//! or sub-sites cannot go, …). Remote Services writes do not touch the registry version.

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

/// One port mapping of a Protocol Application: `local_port → target_host:target_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    pub local_port: u16,
    pub target_host: String,
    pub target_port: u16,
}

/// A named Protocol Application made from a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplicationRecord {
    pub tenant: String,
    pub name: String,
    /// The id of a built-in template (`ssh`, `dtt-reverse`, …).
    pub template: String,
    /// What people call it ("Ticketing Server Access"); empty: its name.
    pub label: String,
    pub mappings: Vec<PortMapping>,
    /// DTT Reverse: the service endpoint that dials the targets.
    pub target_endpoint: Option<String>,
    pub session_timeout_s: i64,
    pub created_ms: i64,
}

/// A Protocol Application assigned to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignmentRecord {
    pub tenant: String,
    pub application: String,
    pub device: String,
    pub created_ms: i64,
}

/// A user's role on a site (and its sub-sites): `site-owner` or `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRecord {
    pub tenant: String,
    pub site: String,
    pub user_name: String,
    pub role: String,
}

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

const APPLICATION_COLUMNS: &str =
    "tenant, name, template, mappings, target_endpoint, session_timeout_s, created_ms, label";

fn application_of(row: &AnyRow) -> SqlResult<ApplicationRecord> {
    let mappings: String = row.try_get("mappings")?;
    Ok(ApplicationRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        template: row.try_get("template")?,
        label: row.try_get("label")?,
        mappings: serde_json::from_str(&mappings)
            .map_err(|e| corrupt(format!("port mappings in the database: {e}")))?,
        target_endpoint: row.try_get("target_endpoint")?,
        session_timeout_s: row.try_get("session_timeout_s")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn assignment_of(row: &AnyRow) -> SqlResult<AssignmentRecord> {
    Ok(AssignmentRecord {
        tenant: row.try_get("tenant")?,
        application: row.try_get("application")?,
        device: row.try_get("device")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn member_of(row: &AnyRow) -> SqlResult<MemberRecord> {
    Ok(MemberRecord {
        tenant: row.try_get("tenant")?,
        site: row.try_get("site")?,
        user_name: row.try_get("user_name")?,
        role: row.try_get("role")?,
    })
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

    // ---- Protocol Applications ------------------------------------------------------

    /// Adds a Protocol Application. The relay validates the template and the mappings.
    pub async fn add_application(&self, app: &ApplicationRecord) -> Result<(), StoreError> {
        let mappings = serde_json::to_string(&app.mappings)
            .map_err(|e| StoreError::Invalid(format!("port mappings: {e}")))?;
        let mut tx = self.remote_tx().await?;
        if row_exists(&mut tx, "rs_applications", &app.tenant, &app.name).await? {
            return Err(exists("application", &app.tenant, &app.name));
        }
        sqlx::query(&format!(
            "INSERT INTO rs_applications ({APPLICATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&app.tenant)
        .bind(&app.name)
        .bind(&app.template)
        .bind(mappings)
        .bind(app.target_endpoint.clone())
        .bind(app.session_timeout_s)
        .bind(app.created_ms)
        .bind(&app.label)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn applications(&self, tenant: &str) -> Result<Vec<ApplicationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {APPLICATION_COLUMNS} FROM rs_applications WHERE tenant = $1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(application_of).collect::<SqlResult<_>>()?)
    }

    pub async fn application(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ApplicationRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {APPLICATION_COLUMNS} FROM rs_applications WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(application_of).transpose()?)
    }

    /// Removes an application that is assigned to no device.
    pub async fn remove_application(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        if !row_exists(&mut tx, "rs_applications", tenant, name).await? {
            return Err(not_found("application", tenant, name));
        }
        let assigned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM rs_assignments WHERE tenant = $1 AND application = $2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if assigned > 0 {
            return Err(StoreError::Invalid(format!(
                "application \"{name}\" is assigned to {assigned} device(s): unassign it first"
            )));
        }
        sqlx::query("DELETE FROM rs_applications WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- assignments ----------------------------------------------------------------

    /// Assigns an application to a device; both must exist.
    pub async fn add_assignment(&self, a: &AssignmentRecord) -> Result<(), StoreError> {
        let t = &a.tenant;
        let mut tx = self.remote_tx().await?;
        if !row_exists(&mut tx, "rs_applications", t, &a.application).await? {
            return Err(not_found("application", t, &a.application));
        }
        if !row_exists(&mut tx, "rs_devices", t, &a.device).await? {
            return Err(not_found("device", t, &a.device));
        }
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT device FROM rs_assignments WHERE tenant = $1 AND application = $2 AND device = $3",
        )
        .bind(t)
        .bind(&a.application)
        .bind(&a.device)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(exists(
                "assignment",
                t,
                &format!("{}@{}", a.application, a.device),
            ));
        }
        sqlx::query(
            "INSERT INTO rs_assignments (tenant, application, device, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(t)
        .bind(&a.application)
        .bind(&a.device)
        .bind(a.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's assignments, of one device or all.
    pub async fn assignments(
        &self,
        tenant: &str,
        device: Option<&str>,
    ) -> Result<Vec<AssignmentRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, application, device, created_ms FROM rs_assignments WHERE tenant = $1 AND ($2 IS NULL OR device = $2) ORDER BY device, application",
        )
        .bind(tenant)
        .bind(device.map(str::to_string))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(assignment_of).collect::<SqlResult<_>>()?)
    }

    /// Removes an assignment and ends the connection sessions of that application on that
    /// device (reason `unassigned`), in one transaction.
    pub async fn remove_assignment(
        &self,
        tenant: &str,
        application: &str,
        device: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        let done = sqlx::query(
            "DELETE FROM rs_assignments WHERE tenant = $1 AND application = $2 AND device = $3",
        )
        .bind(tenant)
        .bind(application)
        .bind(device)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(
                "assignment",
                tenant,
                &format!("{application}@{device}"),
            ));
        }
        sqlx::query(
            "UPDATE rs_connection_sessions SET ended_ms = $4, end_reason = 'unassigned' WHERE tenant = $1 AND application = $2 AND device = $3 AND ended_ms IS NULL",
        )
        .bind(tenant)
        .bind(application)
        .bind(device)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- site members ---------------------------------------------------------------

    /// Gives a user a role on a site (replacing the role they had there).
    pub async fn set_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        let mut tx = self.remote_tx().await?;
        if !row_exists(&mut tx, "rs_sites", &m.tenant, &m.site).await? {
            return Err(not_found("site", &m.tenant, &m.site));
        }
        sqlx::query(
            "DELETE FROM rs_site_members WHERE tenant = $1 AND site = $2 AND user_name = $3",
        )
        .bind(&m.tenant)
        .bind(&m.site)
        .bind(&m.user_name)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO rs_site_members (tenant, site, user_name, role) VALUES ($1, $2, $3, $4)",
        )
        .bind(&m.tenant)
        .bind(&m.site)
        .bind(&m.user_name)
        .bind(&m.role)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's site members, of one site or all.
    pub async fn members(
        &self,
        tenant: &str,
        site: Option<&str>,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, site, user_name, role FROM rs_site_members WHERE tenant = $1 AND ($2 IS NULL OR site = $2) ORDER BY site, user_name",
        )
        .bind(tenant)
        .bind(site.map(str::to_string))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(member_of).collect::<SqlResult<_>>()?)
    }

    /// The sites where the user has a role.
    pub async fn memberships(
        &self,
        tenant: &str,
        user_name: &str,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, site, user_name, role FROM rs_site_members WHERE tenant = $1 AND user_name = $2 ORDER BY site",
        )
        .bind(tenant)
        .bind(user_name)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(member_of).collect::<SqlResult<_>>()?)
    }

    pub async fn remove_member(
        &self,
        tenant: &str,
        site: &str,
        user_name: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "DELETE FROM rs_site_members WHERE tenant = $1 AND site = $2 AND user_name = $3",
        )
        .bind(tenant)
        .bind(site)
        .bind(user_name)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("member", tenant, &format!("{user_name}@{site}")));
        }
        Ok(())
    }

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
