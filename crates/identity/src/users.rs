//! Users and roles. A user belongs to one tenant and has one role: the platform
//! operator (tenant `management`), or per tenant a tenant administrator, a site owner or a
//! plain user. A session user holds the scopes `portico` and `role:{role}`.

use std::fmt;
use std::str::FromStr;

use portico_store::{Store, StoreError, UserRecord};
use sha2::Digest;

use crate::error::IdentityError;
use crate::password;
use crate::secret::now_ms;

/// The platform's own tenant, home of the operator.
pub const MANAGEMENT_TENANT: &str = "management";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Operator,
    Admin,
    SiteOwner,
    User,
    /// A device's own user (Device Connectivity): its credentials are issued when an
    /// operator accepts the device's registration.
    Device,
    /// The one user devices share before they have credentials of their own: it may only
    /// ask for them. Lives in tenant `management`.
    DeviceBootstrap,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Operator,
        Role::Admin,
        Role::SiteOwner,
        Role::User,
        Role::Device,
        Role::DeviceBootstrap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::SiteOwner => "site-owner",
            Role::User => "user",
            Role::Device => "device",
            Role::DeviceBootstrap => "device-bootstrap",
        }
    }

    /// Whether this is a person's role, as opposed to a device's.
    pub fn is_person(self) -> bool {
        !matches!(self, Role::Device | Role::DeviceBootstrap)
    }

    /// The scopes a session user of this role holds. Devices do not get `portico`: they
    /// use the device API, never Portico's own APIs.
    pub fn scopes(self) -> Vec<String> {
        let role = format!("role:{}", self.as_str());
        match self.is_person() {
            true => vec!["portico".to_string(), role],
            false => vec![role],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Role, IdentityError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                IdentityError::Invalid(format!(
                    "\"{s}\" is not a role: use operator, admin, site-owner, user, device or device-bootstrap"
                ))
            })
    }
}

/// User names: 1 to 64 of lower-case letters, digits, `.`, `_`, `-` and `@` (so an
/// e-mail address fits), starting with a letter or digit.
pub fn check_user_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        });
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Invalid(format!(
            "\"{name}\" is not a valid user name: use 1 to 64 lower-case letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
        )))
    }
}

/// The operator and the device bootstrap user live in tenant `management`, and only there.
fn check_tenant_and_role(tenant: &str, role: Role) -> Result<(), IdentityError> {
    if !portico_store::is_name(tenant) {
        return Err(IdentityError::Invalid(format!(
            "\"{tenant}\" is not a valid tenant name"
        )));
    }
    let management_only = matches!(role, Role::Operator | Role::DeviceBootstrap);
    match (tenant == MANAGEMENT_TENANT, management_only) {
        (true, false) => Err(IdentityError::Invalid(format!(
            "tenant \"{MANAGEMENT_TENANT}\" has operators and the device bootstrap user only"
        ))),
        (false, true) => {
            let who = match role {
                Role::Operator => "operators",
                _ => "device bootstrap users",
            };
            Err(IdentityError::Invalid(format!(
                "{who} belong to tenant \"{MANAGEMENT_TENANT}\""
            )))
        }
        _ => Ok(()),
    }
}

/// Adds a user with a local password.
pub async fn add(
    store: &Store,
    tenant: &str,
    name: &str,
    role: Role,
    password: &str,
) -> Result<(), IdentityError> {
    check_tenant_and_role(tenant, role)?;
    check_user_name(name)?;
    password::check_policy(password)?;
    let record = UserRecord {
        tenant: tenant.to_string(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        password_hash: Some(password::hash(password).await?),
        external: None,
        created_ms: now_ms(),
    };
    store.add_user(&record).await?;
    Ok(())
}

/// The user an external provider vouched for (ID-6): found by the provider's issuer and
/// the user's `sub` there, else made on first login with role `user` and no password. The
/// name is the e-mail address (or `sub`) made a valid user name; when a local account
/// already has it, a suffix from the `sub` keeps them apart, so that an external login
/// never takes over a local account.
pub async fn provision_external(
    store: &Store,
    tenant: &str,
    who: &crate::oidc::ExternalIdentity,
) -> Result<UserRecord, IdentityError> {
    if let Some(user) = store
        .user_by_external(tenant, &who.issuer, &who.subject)
        .await?
    {
        return Ok(user);
    }
    let wanted = external_user_name(who.email.as_deref().unwrap_or(&who.subject));
    let name = match store.user(tenant, &wanted).await? {
        None => wanted,
        Some(_) => {
            let digest = sha2::Sha256::digest(format!("{}\n{}", who.issuer, who.subject));
            let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            let stem: String = wanted.chars().take(55).collect();
            format!("{stem}-{suffix}")
        }
    };
    check_user_name(&name)?;
    let record = UserRecord {
        tenant: tenant.to_string(),
        name,
        role: Role::User.as_str().to_string(),
        password_hash: None,
        external: Some(portico_store::ExternalAccount {
            issuer: who.issuer.clone(),
            subject: who.subject.clone(),
        }),
        created_ms: now_ms(),
    };
    store.add_user(&record).await?;
    Ok(record)
}

/// `raw` (an e-mail address or a provider's `sub`) as a user name: lower case, characters
/// outside the allowed set replaced by `-`, at most 64, starting with a letter or digit.
fn external_user_name(raw: &str) -> String {
    let mapped: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = trimmed.chars().take(64).collect();
    if name.is_empty() {
        "external".to_string()
    } else {
        name
    }
}

/// Replaces a user's password.
pub async fn set_password(
    store: &Store,
    tenant: &str,
    name: &str,
    password: &str,
) -> Result<(), IdentityError> {
    password::check_policy(password)?;
    if store.user(tenant, name).await?.is_none() {
        return Err(StoreError::NotFound {
            kind: "user",
            key: format!("{tenant}/{name}"),
        }
        .into());
    }
    let hash = password::hash(password).await?;
    store.set_user_password(tenant, name, &hash).await?;
    Ok(())
}

/// Removes a user; their sessions end (other nodes notice within `session_cache`).
pub async fn remove(store: &Store, tenant: &str, name: &str) -> Result<(), IdentityError> {
    store.remove_user(tenant, name, now_ms()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_give_scopes() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Role::SiteOwner.scopes(), ["portico", "role:site-owner"]);
    }

    #[test]
    fn names_and_tenants_are_checked() {
        assert!(check_user_name("alice@example.com").is_ok());
        assert!(check_user_name("Alice").is_err());
        assert!(check_user_name("-x").is_err());
        assert!(check_user_name("").is_err());
        assert!(check_tenant_and_role("management", Role::Operator).is_ok());
        assert!(check_tenant_and_role("management", Role::Admin).is_err());
        assert!(check_tenant_and_role("abc", Role::Operator).is_err());
        assert!(check_tenant_and_role("a-b", Role::User).is_err());
    }
}
