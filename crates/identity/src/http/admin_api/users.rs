//! The tenant's users: people with the role `admin`, `site-owner` or `user`. Device
//! accounts (Device Connectivity) are not managed here: they do not exist for this API.
//! An administrator cannot remove or demote themselves, so a tenant keeps an administrator.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portico_store::UserRecord;
use serde::{Deserialize, Serialize};

use super::error::{AdminError, AdminResult, Body};
use super::Admin;
use crate::secret::now_ms;
use crate::users::{self, Role};
use crate::Identity;

/// A user as the API shows it: never a password hash.
#[derive(Serialize)]
pub struct UserView {
    name: String,
    role: String,
    created_ms: i64,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> UserView {
        UserView {
            name: u.name,
            role: u.role,
            created_ms: u.created_ms,
        }
    }
}

/// The roles a tenant administrator gives.
fn tenant_role(role: &str) -> AdminResult<Role> {
    match role.parse::<Role>() {
        Ok(r @ (Role::Admin | Role::SiteOwner | Role::User)) => Ok(r),
        _ => Err(AdminError::bad_request(format!(
            "role \"{role}\": use admin, site-owner or user"
        ))),
    }
}

fn is_person(user: &UserRecord) -> bool {
    user.role.parse::<Role>().is_ok_and(Role::is_person)
}

/// The tenant's person `name` (404 for none, or for a device account).
async fn person(identity: &Identity, tenant: &str, name: &str) -> AdminResult<UserRecord> {
    identity
        .store()
        .user(tenant, name)
        .await?
        .filter(is_person)
        .ok_or_else(|| AdminError::not_found("user", name))
}

fn not_yourself(admin: &Admin, name: &str, what: &str) -> AdminResult<()> {
    if admin.subject == name {
        return Err(AdminError::conflict(format!(
            "You cannot {what} yourself: ask another administrator"
        )));
    }
    Ok(())
}

pub async fn list(
    State(identity): State<Identity>,
    admin: Admin,
) -> AdminResult<Json<Vec<UserView>>> {
    let all = identity.store().users(&admin.tenant).await?;
    Ok(Json(
        all.into_iter()
            .filter(is_person)
            .map(UserView::from)
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: String,
    password: String,
}

pub async fn add(
    State(identity): State<Identity>,
    admin: Admin,
    Body(new): Body<NewUser>,
) -> AdminResult<(StatusCode, Json<UserView>)> {
    let role = tenant_role(&new.role)?;
    identity
        .add_user(&admin.tenant, &new.name, role, &new.password)
        .await?;
    tracing::info!(tenant = %admin.tenant, by = %admin.subject, user = %new.name, %role, "user added");
    let user = person(&identity, &admin.tenant, &new.name).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Changes the role and/or the password. A new role ends the user's sessions (they hold
/// the role they began with); the user signs in again.
pub async fn change(
    State(identity): State<Identity>,
    admin: Admin,
    Path(name): Path<String>,
    Body(change): Body<UserChange>,
) -> AdminResult<Json<UserView>> {
    let role = change.role.as_deref().map(tenant_role).transpose()?;
    if let Some(password) = &change.password {
        crate::password::check_policy(password)?;
    }
    let user = person(&identity, &admin.tenant, &name).await?;
    if role.is_some_and(|r| r != Role::Admin) {
        not_yourself(&admin, &name, "demote")?;
    }
    if let Some(password) = &change.password {
        users::set_password(identity.store(), &admin.tenant, &name, password).await?;
        tracing::info!(tenant = %admin.tenant, by = %admin.subject, user = %name, "password replaced");
    }
    if let Some(role) = role.filter(|r| r.as_str() != user.role) {
        identity
            .store()
            .set_user_role(&admin.tenant, &name, role.as_str(), now_ms())
            .await?;
        tracing::info!(tenant = %admin.tenant, by = %admin.subject, user = %name, %role, "role changed");
    }
    Ok(Json(person(&identity, &admin.tenant, &name).await?.into()))
}

/// Removes the user; their sessions end.
pub async fn remove(
    State(identity): State<Identity>,
    admin: Admin,
    Path(name): Path<String>,
) -> AdminResult<StatusCode> {
    person(&identity, &admin.tenant, &name).await?;
    not_yourself(&admin, &name, "remove")?;
    identity.remove_user(&admin.tenant, &name).await?;
    tracing::info!(tenant = %admin.tenant, by = %admin.subject, user = %name, "user removed");
    Ok(StatusCode::NO_CONTENT)
}
