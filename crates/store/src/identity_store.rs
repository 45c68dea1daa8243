//! The identity tables (migration `0002_identity.sql`) as [`Store`] methods: users and
//! sessions here; OAuth clients, signing keys, authorization codes, refresh tokens and
//! external OpenID Connect providers in `oauth`.
//!
//! Every query on per-tenant data names the tenant. The exceptions look a row up by a
//! secret only its holder knows (the hash of a session id, code or refresh token) or by a
//! globally unique client id; they return the row's tenant, and the caller compares it with
//! the tenant it serves. Signing keys belong to the platform, not to a tenant.
//!
//! Identity writes do not touch the registry version: they are not registry changes.

mod oauth;

pub use oauth::{
    AuthorizationCodeRecord, CodeTake, OAuthClientRecord, OidcProviderRecord, RefreshTokenRecord,
    SigningKeyRecord,
};

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::StoreError;
use crate::{Backend, Store};

/// A user of a tenant (or the platform operator in tenant `management`).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub tenant: String,
    pub name: String,
    /// `operator`, `admin`, `site-owner` or `user`; checked by the identity service.
    pub role: String,
    /// The argon2id PHC string; `None` for a user who logs in through an external provider.
    pub password_hash: Option<String>,
    /// For an external (OIDC) user: the provider's issuer and the user's `sub` there.
    pub external: Option<ExternalAccount>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    pub issuer: String,
    pub subject: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("has_password", &self.password_hash.is_some())
            .field("external", &self.external)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// A login session. The session id itself is never stored, only its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Hex SHA-256 of the session id.
    pub id_hash: String,
    pub tenant: String,
    pub user_name: String,
    /// The user's role when the session began.
    pub role: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
    pub csrf_token: String,
    /// When the session was ended (logout, user removed); `None` while it lasts.
    pub ended_ms: Option<i64>,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("tenant", &self.tenant)
            .field("user_name", &self.user_name)
            .field("role", &self.role)
            .field("created_ms", &self.created_ms)
            .field("last_used_ms", &self.last_used_ms)
            .field("ended_ms", &self.ended_ms)
            .finish_non_exhaustive()
    }
}

type SqlResult<T> = std::result::Result<T, sqlx::Error>;

fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

fn json_list(row: &AnyRow, col: &str) -> SqlResult<Vec<String>> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(format!("{col} in the database: {e}")))
}

fn to_json(list: &[String]) -> SqlResult<String> {
    serde_json::to_string(list).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn flag(row: &AnyRow, col: &str) -> SqlResult<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

const USER_COLUMNS: &str =
    "tenant, name, role, password_hash, external_issuer, external_subject, created_ms";

fn user_of(row: &AnyRow) -> SqlResult<UserRecord> {
    let issuer: Option<String> = row.try_get("external_issuer")?;
    let subject: Option<String> = row.try_get("external_subject")?;
    Ok(UserRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        password_hash: row.try_get("password_hash")?,
        external: match (issuer, subject) {
            (Some(issuer), Some(subject)) => Some(ExternalAccount { issuer, subject }),
            _ => None,
        },
        created_ms: row.try_get("created_ms")?,
    })
}

const SESSION_COLUMNS: &str =
    "id_hash, tenant, user_name, role, created_ms, last_used_ms, csrf_token, ended_ms";

fn session_of(row: &AnyRow) -> SqlResult<SessionRecord> {
    Ok(SessionRecord {
        id_hash: row.try_get("id_hash")?,
        tenant: row.try_get("tenant")?,
        user_name: row.try_get("user_name")?,
        role: row.try_get("role")?,
        created_ms: row.try_get("created_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
        csrf_token: row.try_get("csrf_token")?,
        ended_ms: row.try_get("ended_ms")?,
    })
}

fn exists(kind: &'static str, key: String) -> StoreError {
    StoreError::Exists { kind, key }
}

fn not_found(kind: &'static str, key: String) -> StoreError {
    StoreError::NotFound { kind, key }
}

impl Store {
    /// A transaction for an identity write that first reads: on SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so that two writers do not both read and then
    /// fail to upgrade.
    async fn identity_tx(&self) -> SqlResult<Transaction<'static, Any>> {
        match self.backend() {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool().begin().await,
        }
    }

    // ---- users ----------------------------------------------------------------------

    /// Adds `user`; `Exists` when the tenant has a user of that name, or an external
    /// user with the same issuer and subject.
    pub async fn add_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let key = format!("{}/{}", user.tenant, user.name);
        let mut tx = self.identity_tx().await?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT name FROM users WHERE tenant = $1 AND name = $2")
                .bind(&user.tenant)
                .bind(&user.name)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(exists("user", key));
        }
        if let Some(ext) = &user.external {
            let linked: Option<String> = sqlx::query_scalar(
                "SELECT name FROM users WHERE tenant = $1 AND external_issuer = $2 AND external_subject = $3",
            )
            .bind(&user.tenant)
            .bind(&ext.issuer)
            .bind(&ext.subject)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(name) = linked {
                return Err(exists(
                    "external account of user",
                    format!("{}/{name}", user.tenant),
                ));
            }
        }
        sqlx::query(&format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&user.tenant)
        .bind(&user.name)
        .bind(&user.role)
        .bind(user.password_hash.clone())
        .bind(user.external.as_ref().map(|e| e.issuer.clone()))
        .bind(user.external.as_ref().map(|e| e.subject.clone()))
        .bind(user.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, tenant: &str, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user_of).transpose()?)
    }

    /// The tenant's user linked to `subject` at the external provider `issuer`.
    pub async fn user_by_external(
        &self,
        tenant: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 AND external_issuer = $2 AND external_subject = $3"
        ))
        .bind(tenant)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user_of).transpose()?)
    }

    /// The tenant's users by name.
    pub async fn users(&self, tenant: &str) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(user_of).collect::<SqlResult<_>>()?)
    }

    /// Replaces the user's password hash; `NotFound` when there is no such user.
    pub async fn set_user_password(
        &self,
        tenant: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $3 WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .bind(password_hash)
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("user", format!("{tenant}/{name}")));
        }
        Ok(())
    }

    /// Gives the user another role and ends their sessions (which hold the role they began
    /// with), in one transaction; `NotFound` when there is no such user.
    pub async fn set_user_role(
        &self,
        tenant: &str,
        name: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.identity_tx().await?;
        let done = sqlx::query("UPDATE users SET role = $3 WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .bind(role)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("user", format!("{tenant}/{name}")));
        }
        sqlx::query(
            "UPDATE sessions SET ended_ms = $3 WHERE tenant = $1 AND user_name = $2 AND ended_ms IS NULL",
        )
        .bind(tenant)
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the user and ends their sessions, in one transaction; `NotFound` when there
    /// is no such user.
    pub async fn remove_user(
        &self,
        tenant: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.identity_tx().await?;
        let done = sqlx::query("DELETE FROM users WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("user", format!("{tenant}/{name}")));
        }
        sqlx::query(
            "UPDATE sessions SET ended_ms = $3 WHERE tenant = $1 AND user_name = $2 AND ended_ms IS NULL",
        )
        .bind(tenant)
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- sessions -------------------------------------------------------------------

    pub async fn add_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&session.id_hash)
        .bind(&session.tenant)
        .bind(&session.user_name)
        .bind(&session.role)
        .bind(session.created_ms)
        .bind(session.last_used_ms)
        .bind(&session.csrf_token)
        .bind(session.ended_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session whose id hashes to `id_hash`, ended or not. Looked up by the secret
    /// alone: the caller compares the returned tenant with the one it serves.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(session_of).transpose()?)
    }

    /// Records a use of a live session; an earlier time than the stored one changes
    /// nothing (another node may have written a later one).
    pub async fn touch_session(&self, id_hash: &str, used_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_used_ms = $2 WHERE id_hash = $1 AND ended_ms IS NULL AND last_used_ms < $2",
        )
        .bind(id_hash)
        .bind(used_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends a live session; false when it was unknown or had ended already.
    pub async fn end_session(&self, id_hash: &str, ended_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET ended_ms = $2 WHERE id_hash = $1 AND ended_ms IS NULL",
        )
        .bind(id_hash)
        .bind(ended_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes sessions ended, or last used, before `before_ms`; returns how many.
    pub async fn purge_sessions(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE ended_ms < $1 OR last_used_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
