//! Protocol Applications, their assignments to devices, and who holds which role on a
//! site: the records that decide who may connect what (RS-6).

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{corrupt, exists, not_found, row_exists, SqlResult};
use crate::error::StoreError;
use crate::Store;

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

impl Store {
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
}
