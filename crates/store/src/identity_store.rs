//! The identity tables (migration `0002_identity.sql`) as [`Store`] methods: users,
//! sessions, OAuth clients, signing keys, authorization codes, refresh tokens and
//! external OpenID Connect providers.
//!
//! Every query on per-tenant data names the tenant. The exceptions look a row up by a
//! secret only its holder knows (the hash of a session id, code or refresh token) or by a
//! globally unique client id; they return the row's tenant, and the caller compares it with
//! the tenant it serves. Signing keys belong to the platform, not to a tenant.
//!
//! Identity writes do not touch the registry version: they are not registry changes.

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

/// An OAuth 2.0 client of a tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClientRecord {
    /// Unique across tenants.
    pub client_id: String,
    pub tenant: String,
    /// Hex SHA-256 of the client secret; `None` for a public client (PKCE only).
    pub secret_hash: Option<String>,
    pub name: String,
    pub grant_types: Vec<String>,
    /// The most a token of this client may hold.
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub active: bool,
    pub created_ms: i64,
}

impl fmt::Debug for OAuthClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientRecord")
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("confidential", &self.secret_hash.is_some())
            .field("name", &self.name)
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field("redirect_uris", &self.redirect_uris)
            .field("active", &self.active)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// A token signing key of the platform.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// `ES256`.
    pub algorithm: String,
    /// PKCS#8, PEM.
    pub private_key_pem: String,
    pub created_ms: i64,
    /// When the key stopped signing; `None` while it signs.
    pub retired_ms: Option<i64>,
    /// Until when a retired key stays in the JWKS (its last token's expiry).
    pub publish_until_ms: Option<i64>,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_ms", &self.created_ms)
            .field("retired_ms", &self.retired_ms)
            .field("publish_until_ms", &self.publish_until_ms)
            .finish_non_exhaustive()
    }
}

/// An authorization code (authorization code grant with PKCE).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_hash: String,
    pub client_id: String,
    pub tenant: String,
    pub user_name: String,
    /// PKCE `S256` challenge.
    pub code_challenge: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub expires_ms: i64,
    pub used: bool,
}

impl fmt::Debug for AuthorizationCodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCodeRecord")
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("user_name", &self.user_name)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("expires_ms", &self.expires_ms)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// What taking an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTake {
    /// The code was unused; it is now used.
    Taken(AuthorizationCodeRecord),
    /// The code had been used before.
    AlreadyUsed(AuthorizationCodeRecord),
    Unknown,
}

/// A refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    /// Shared by every rotation of one grant, so that a reuse can revoke them all.
    pub chain_id: String,
    pub client_id: String,
    pub tenant: String,
    pub subject: String,
    pub scopes: Vec<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub revoked: bool,
}

impl fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("chain_id", &self.chain_id)
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// A tenant's external OpenID Connect provider.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcProviderRecord {
    pub tenant: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub created_ms: i64,
}

impl fmt::Debug for OidcProviderRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProviderRecord")
            .field("tenant", &self.tenant)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("created_ms", &self.created_ms)
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

const CLIENT_COLUMNS: &str =
    "client_id, tenant, secret_hash, name, grant_types, scopes, redirect_uris, active, created_ms";

fn client_of(row: &AnyRow) -> SqlResult<OAuthClientRecord> {
    Ok(OAuthClientRecord {
        client_id: row.try_get("client_id")?,
        tenant: row.try_get("tenant")?,
        secret_hash: row.try_get("secret_hash")?,
        name: row.try_get("name")?,
        grant_types: json_list(row, "grant_types")?,
        scopes: json_list(row, "scopes")?,
        redirect_uris: json_list(row, "redirect_uris")?,
        active: flag(row, "active")?,
        created_ms: row.try_get("created_ms")?,
    })
}

const KEY_COLUMNS: &str =
    "kid, algorithm, private_key_pem, created_ms, retired_ms, publish_until_ms";

fn key_of(row: &AnyRow) -> SqlResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        private_key_pem: row.try_get("private_key_pem")?,
        created_ms: row.try_get("created_ms")?,
        retired_ms: row.try_get("retired_ms")?,
        publish_until_ms: row.try_get("publish_until_ms")?,
    })
}

const CODE_COLUMNS: &str = "code_hash, client_id, tenant, user_name, code_challenge, redirect_uri, scopes, expires_ms, used";

fn code_of(row: &AnyRow) -> SqlResult<AuthorizationCodeRecord> {
    Ok(AuthorizationCodeRecord {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id")?,
        tenant: row.try_get("tenant")?,
        user_name: row.try_get("user_name")?,
        code_challenge: row.try_get("code_challenge")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scopes: json_list(row, "scopes")?,
        expires_ms: row.try_get("expires_ms")?,
        used: flag(row, "used")?,
    })
}

const REFRESH_COLUMNS: &str =
    "token_hash, chain_id, client_id, tenant, subject, scopes, created_ms, expires_ms, revoked";

fn refresh_of(row: &AnyRow) -> SqlResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        token_hash: row.try_get("token_hash")?,
        chain_id: row.try_get("chain_id")?,
        client_id: row.try_get("client_id")?,
        tenant: row.try_get("tenant")?,
        subject: row.try_get("subject")?,
        scopes: json_list(row, "scopes")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        revoked: flag(row, "revoked")?,
    })
}

fn provider_of(row: &AnyRow) -> SqlResult<OidcProviderRecord> {
    Ok(OidcProviderRecord {
        tenant: row.try_get("tenant")?,
        issuer: row.try_get("issuer")?,
        client_id: row.try_get("client_id")?,
        client_secret: row.try_get("client_secret")?,
        created_ms: row.try_get("created_ms")?,
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

    // ---- OAuth clients --------------------------------------------------------------

    /// Adds `client`; `Exists` when its client id is taken (in any tenant).
    pub async fn add_oauth_client(&self, client: &OAuthClientRecord) -> Result<(), StoreError> {
        let mut tx = self.identity_tx().await?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT client_id FROM oauth_clients WHERE client_id = $1")
                .bind(&client.client_id)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(exists("OAuth client", client.client_id.clone()));
        }
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&client.client_id)
        .bind(&client.tenant)
        .bind(client.secret_hash.clone())
        .bind(&client.name)
        .bind(to_json(&client.grant_types)?)
        .bind(to_json(&client.scopes)?)
        .bind(to_json(&client.redirect_uris)?)
        .bind(i64::from(client.active))
        .bind(client.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The client with this id, whichever its tenant (client ids are unique): the token
    /// endpoint on a gateway host learns the tenant from the client.
    pub async fn oauth_client(
        &self,
        client_id: &str,
    ) -> Result<Option<OAuthClientRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(client_of).transpose()?)
    }

    /// The tenant's clients by id.
    pub async fn oauth_clients(&self, tenant: &str) -> Result<Vec<OAuthClientRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE tenant = $1 ORDER BY client_id"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(client_of).collect::<SqlResult<_>>()?)
    }

    pub async fn set_oauth_client_active(
        &self,
        tenant: &str,
        client_id: &str,
        active: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_clients SET active = $3 WHERE tenant = $1 AND client_id = $2",
        )
        .bind(tenant)
        .bind(client_id)
        .bind(i64::from(active))
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("OAuth client", client_id.to_string()));
        }
        Ok(())
    }

    /// Removes the client and revokes its refresh tokens, in one transaction.
    pub async fn remove_oauth_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.identity_tx().await?;
        let done = sqlx::query("DELETE FROM oauth_clients WHERE tenant = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("OAuth client", client_id.to_string()));
        }
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE tenant = $1 AND client_id = $2")
            .bind(tenant)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- signing keys ---------------------------------------------------------------

    pub async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.private_key_pem)
        .bind(key.created_ms)
        .bind(key.retired_ms)
        .bind(key.publish_until_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every stored key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_ms DESC, kid"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(key_of).collect::<SqlResult<_>>()?)
    }

    /// Stops a key from signing; it stays published until `publish_until_ms`. A key
    /// retired before keeps its first retirement.
    pub async fn retire_signing_key(
        &self,
        kid: &str,
        retired_ms: i64,
        publish_until_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signing_keys SET retired_ms = $2, publish_until_ms = $3 WHERE kid = $1 AND retired_ms IS NULL",
        )
        .bind(kid)
        .bind(retired_ms)
        .bind(publish_until_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes retired keys no longer published at `now_ms`; returns how many.
    pub async fn purge_signing_keys(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM signing_keys WHERE publish_until_ms IS NOT NULL AND publish_until_ms < $1",
        )
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    // ---- authorization codes --------------------------------------------------------

    pub async fn add_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.tenant)
        .bind(&code.user_name)
        .bind(&code.code_challenge)
        .bind(&code.redirect_uri)
        .bind(to_json(&code.scopes)?)
        .bind(code.expires_ms)
        .bind(i64::from(code.used))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the code used and returns it; of two concurrent takers only one gets
    /// `Taken`. Expiry is the caller's to check.
    pub async fn take_authorization_code(&self, code_hash: &str) -> Result<CodeTake, StoreError> {
        let mut tx = self.identity_tx().await?;
        let done = sqlx::query(
            "UPDATE authorization_codes SET used = 1 WHERE code_hash = $1 AND used = 0",
        )
        .bind(code_hash)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"
        ))
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match row.as_ref().map(code_of).transpose()? {
            None => CodeTake::Unknown,
            Some(code) if done.rows_affected() == 1 => CodeTake::Taken(code),
            Some(code) => CodeTake::AlreadyUsed(code),
        })
    }

    /// Deletes codes that expired before `now_ms`; returns how many.
    pub async fn purge_authorization_codes(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM authorization_codes WHERE expires_ms < $1")
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    // ---- refresh tokens -------------------------------------------------------------

    pub async fn add_refresh_token(&self, token: &RefreshTokenRecord) -> Result<(), StoreError> {
        self.insert_refresh_token(self.pool(), token).await
    }

    async fn insert_refresh_token<'e, E>(
        &self,
        executor: E,
        token: &RefreshTokenRecord,
    ) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        sqlx::query(&format!(
            "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&token.token_hash)
        .bind(&token.chain_id)
        .bind(&token.client_id)
        .bind(&token.tenant)
        .bind(&token.subject)
        .bind(to_json(&token.scopes)?)
        .bind(token.created_ms)
        .bind(token.expires_ms)
        .bind(i64::from(token.revoked))
        .execute(executor)
        .await?;
        Ok(())
    }

    /// The refresh token whose hash is `token_hash`, revoked or not. Looked up by the
    /// secret alone: the caller checks client and tenant.
    pub async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(refresh_of).transpose()?)
    }

    /// Revokes the token `old_hash` and stores `new` in its place, in one transaction.
    /// When `old_hash` was revoked already (a reuse, or a concurrent rotation) nothing is
    /// stored, the whole chain of `old_hash` is revoked, and the answer is false.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshTokenRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.identity_tx().await?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = $1 AND revoked = 0",
        )
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            self.insert_refresh_token(&mut *tx, new).await?;
            tx.commit().await?;
            return Ok(true);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 WHERE chain_id IN \
             (SELECT chain_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(false)
    }

    /// Revokes every token of the chain.
    pub async fn revoke_refresh_chain(&self, chain_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE chain_id = $1")
            .bind(chain_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes refresh tokens that expired before `now_ms`; returns how many.
    pub async fn purge_refresh_tokens(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE expires_ms < $1")
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    // ---- external OpenID Connect providers ------------------------------------------

    /// Sets (or replaces) the tenant's external provider.
    pub async fn set_oidc_provider(&self, provider: &OidcProviderRecord) -> Result<(), StoreError> {
        let mut tx = self.identity_tx().await?;
        sqlx::query("DELETE FROM oidc_providers WHERE tenant = $1")
            .bind(&provider.tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_providers (tenant, issuer, client_id, client_secret, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&provider.tenant)
        .bind(&provider.issuer)
        .bind(&provider.client_id)
        .bind(&provider.client_secret)
        .bind(provider.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn oidc_provider(
        &self,
        tenant: &str,
    ) -> Result<Option<OidcProviderRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT tenant, issuer, client_id, client_secret, created_ms FROM oidc_providers WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(provider_of).transpose()?)
    }

    /// Removes the tenant's external provider; false when it had none.
    pub async fn remove_oidc_provider(&self, tenant: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oidc_providers WHERE tenant = $1")
            .bind(tenant)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
