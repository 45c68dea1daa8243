//! The checks every handler starts with: who is calling, what they may do on a device,
//! and the audit record of what they did.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use portico_store::{AuditRecord, DeviceRecord, MemberRecord, SiteRecord};
use rand::RngCore;

use super::error::{ApiError, ApiResult};
use super::{ApiState, Caller};
use crate::rules::{self, Action, Role, SiteRole};

/// The caller with their role understood. Missing caller: 401 (the gateway lets no
/// anonymous request through, so this is a wiring fault); a role unknown here: 403.
pub struct Who {
    pub tenant: String,
    pub subject: String,
    pub role: Role,
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, ApiError> {
        let caller = parts.extensions.get::<Caller>().ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "Sign in to use Remote Services")
        })?;
        let role = Role::parse(&caller.role).ok_or_else(|| {
            ApiError::forbidden(format!("The role \"{}\" has no rights here", caller.role))
        })?;
        Ok(Who {
            tenant: caller.tenant.clone(),
            subject: caller.subject.clone(),
            role,
        })
    }
}

impl Who {
    /// 403 unless the caller may do `action`.
    pub fn require(&self, action: Action) -> ApiResult<()> {
        if rules::permits(self.role, action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "Your role may not do this ({})",
                describe(action)
            )))
        }
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Manage => "tenant administrators manage Remote Services",
        Action::ReadCatalogue => "reading the catalogue",
        Action::SeeDevice(_) => "the device is on a site you are not a member of",
        Action::Assign(_) => "only owners of the device's site assign applications",
        Action::Connect(_) => "the device is on a site you are not a member of",
    }
}

/// What the caller's memberships and the tenant's sites say about each site.
pub struct SiteView {
    pub sites: Vec<SiteRecord>,
    pub memberships: Vec<MemberRecord>,
    pub role: Role,
}

impl SiteView {
    pub async fn load(state: &ApiState, who: &Who) -> ApiResult<SiteView> {
        Ok(SiteView {
            sites: state.store.sites(&who.tenant).await?,
            memberships: state.store.memberships(&who.tenant, &who.subject).await?,
            role: who.role,
        })
    }

    pub fn role_on(&self, site: &str) -> Option<SiteRole> {
        rules::site_role(self.role, &self.memberships, &self.sites, site)
    }

    pub fn may(&self, action: impl Fn(Option<SiteRole>) -> Action, site: &str) -> bool {
        rules::permits(self.role, action(self.role_on(site)))
    }
}

/// The tenant's device `name` (404 when it has none of that name).
pub async fn device(state: &ApiState, who: &Who, name: &str) -> ApiResult<DeviceRecord> {
    state
        .store
        .device(&who.tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found("device", name))
}

/// 256 random bits, hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records what the caller did. An audit record that cannot be written fails the
/// request: an unaudited connection is not allowed to happen silently.
pub async fn audit(
    state: &ApiState,
    tenant: &str,
    actor: &str,
    action: &str,
    object: String,
    detail: String,
) -> ApiResult<()> {
    let at_ms = state.now();
    state
        .store
        .add_audit(&AuditRecord {
            tenant: tenant.into(),
            id: format!("{at_ms:013}-{}", &random_hex()[..16]),
            at_ms,
            actor: actor.into(),
            action: action.into(),
            object,
            detail,
        })
        .await?;
    Ok(())
}

/// Object names: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{kind} name \"{name}\": use 1-64 of a-z 0-9 . _ -, starting with a letter or digit"
        )))
    }
}
