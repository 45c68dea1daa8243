//! The OAuth 2.0 server's tables: clients, signing keys, authorization codes, refresh
//! tokens, and the external OpenID Connect providers tenants sign in with.

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::{exists, flag, json_list, not_found, to_json, SqlResult};
use crate::error::StoreError;
use crate::Store;

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

impl Store {
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
