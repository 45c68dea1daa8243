//! Portico's identity service (SPEC section 6): users and roles, login with throttling,
//! sessions, the OAuth 2.0 authorization server, access-token JWTs with the tenant claim,
//! and CSRF tokens. [`Identity`] ties the pieces together; [`http`] serves them.
//!
//! The core modules are plain types and functions; only `http` knows about requests.
#![forbid(unsafe_code)]
// Tests may unwrap; the library code may not (workspace lint `clippy::unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod csrf;
mod error;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod oidc;
pub mod password;
mod secret;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use config::{IdentityConfig, ThrottleConfig};
pub use error::IdentityError;
pub use oauth::{
    AuthorizeError, AuthorizeRequest, ClientCredentials, NewClient, OAuthError, TokenRequest,
    TokenResponse,
};
pub use sessions::{Session, SessionId};
pub use tokens::{check_audience, AccessToken, TokenError, TokenGrant};
pub use users::{Role, MANAGEMENT_TENANT};

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use portico_store::{Store, UserRecord};
use serde_json::{json, Value};

use crate::keys::KeyRing;
use crate::secret::{now_ms, random_token};
use crate::sessions::Sessions;
use crate::throttle::LoginThrottle;

/// The identity service of one node. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: IdentityConfig,
    issuer: String,
    keys: KeyRing,
    sessions: Arc<Sessions>,
    throttle: LoginThrottle,
    /// A hash checked when the user does not exist, so that an unknown name costs the
    /// same time as a wrong password.
    decoy_hash: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    pub session_id: SessionId,
    pub session: Session,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many failures for the account or the client address; the password was not
    /// checked.
    #[error("too many failed logins; try again in {} s", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("wrong user name or password")]
    WrongCredentials,
    #[error(transparent)]
    Failed(#[from] IdentityError),
}

impl Identity {
    /// Opens the service on `store`: makes a signing key when none is due, loads the keys,
    /// and starts the housekeeping task (key rotation, session write-back, purging), which
    /// stops when the last clone is dropped. `issuer` is the `iss` of the tokens: the
    /// gateway origin of the region, e.g. `https://gateway.eu1.portico.example`.
    pub async fn open(
        store: Store,
        config: IdentityConfig,
        issuer: impl Into<String>,
    ) -> Result<Identity, IdentityError> {
        let keys = KeyRing::new(store.clone(), &config);
        keys.rotate_if_due().await?;
        let decoy_hash = password::hash(&random_token(16)).await?;
        let inner = Arc::new(Inner {
            sessions: Arc::new(Sessions::new(store.clone(), &config)),
            throttle: LoginThrottle::new(config.throttle.clone()),
            store,
            issuer: issuer.into(),
            keys,
            config,
            decoy_hash,
        });
        spawn_maintenance(Arc::downgrade(&inner), inner.config.maintenance_interval);
        Ok(Identity { inner })
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    // ---- users ----------------------------------------------------------------------

    pub async fn add_user(
        &self,
        tenant: &str,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<(), IdentityError> {
        users::add(&self.inner.store, tenant, name, role, password).await
    }

    pub async fn set_password(
        &self,
        tenant: &str,
        name: &str,
        password: &str,
    ) -> Result<(), IdentityError> {
        users::set_password(&self.inner.store, tenant, name, password).await
    }

    pub async fn remove_user(&self, tenant: &str, name: &str) -> Result<(), IdentityError> {
        users::remove(&self.inner.store, tenant, name).await?;
        self.inner.sessions.forget_user(tenant, name);
        Ok(())
    }

    /// Starts a session for a user an external OpenID provider has just vouched for
    /// (ID-6), making the user on first login.
    pub async fn login_external(
        &self,
        tenant: &str,
        who: &oidc::ExternalIdentity,
    ) -> Result<Login, IdentityError> {
        let user = users::provision_external(&self.inner.store, tenant, who).await?;
        let (session_id, session) = self
            .inner
            .sessions
            .create(tenant, &user.name, &user.role)
            .await?;
        tracing::info!(tenant, user = %user.name, issuer = %who.issuer, "login through an external provider");
        Ok(Login {
            session_id,
            session,
        })
    }

    /// Checks a local password and starts a session. Throttled per account and per
    /// `client` address before the password is even looked at.
    pub async fn login(
        &self,
        tenant: &str,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Login, LoginError> {
        let user = self.check_password(tenant, name, password, client).await?;
        let (session_id, session) = self
            .inner
            .sessions
            .create(tenant, &user.name, &user.role)
            .await?;
        tracing::info!(tenant, user = %user.name, "login");
        Ok(Login {
            session_id,
            session,
        })
    }

    /// Checks a local password without starting a session (HTTP Basic callers such as
    /// devices), throttled like a login.
    pub async fn check_password(
        &self,
        tenant: &str,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<UserRecord, LoginError> {
        let name = name.trim().to_ascii_lowercase();
        let throttle = &self.inner.throttle;
        let attempt = match throttle.reserve(tenant, &name, client, Instant::now()) {
            Ok(attempt) => attempt,
            Err(retry_after) => return Err(LoginError::Throttled { retry_after }),
        };
        let user = self
            .inner
            .store
            .user(tenant, &name)
            .await
            .map_err(IdentityError::from)?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.as_deref())
            .unwrap_or(&self.inner.decoy_hash);
        let matches = password::verify(password, hash).await;
        let user = match user {
            Some(u) if matches && u.password_hash.is_some() => u,
            _ => {
                attempt.failed(Instant::now());
                tracing::info!(tenant, user = %name, client = %client, "failed login");
                return Err(LoginError::WrongCredentials);
            }
        };
        attempt.succeeded();
        Ok(user)
    }

    // ---- sessions -------------------------------------------------------------------

    /// The live session with this id, marked as used now; `None` when unknown, ended or
    /// expired. The caller compares its tenant with the host's.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, IdentityError> {
        self.inner.sessions.touch(id).await
    }

    /// Like [`Identity::session`], without marking it used.
    pub async fn peek_session(&self, id: &str) -> Result<Option<Session>, IdentityError> {
        self.inner.sessions.peek(id).await
    }

    /// Ends the session (logout); false when it was not live.
    pub async fn logout(&self, id: &str) -> Result<bool, IdentityError> {
        self.inner.sessions.end(id).await
    }

    /// Resolves when the session ends, by logout or expiry (see [`Sessions::ended`]).
    pub fn session_ended(&self, id: &str) -> impl Future<Output = ()> + Send + 'static {
        self.inner.sessions.ended(id)
    }

    // ---- tokens ---------------------------------------------------------------------

    /// Signs an access token for `grant`, living `access_token_lifetime`.
    pub fn mint(&self, grant: &TokenGrant) -> Result<String, TokenError> {
        self.mint_for(grant, self.inner.config.access_token_lifetime)
    }

    /// Signs an access token for `grant` living `lifetime`.
    pub(crate) fn mint_for(
        &self,
        grant: &TokenGrant,
        lifetime: Duration,
    ) -> Result<String, TokenError> {
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        tokens::mint(
            &self.inner.keys.current(),
            &self.inner.issuer,
            grant,
            now_ms() / 1000,
            lifetime,
        )
    }

    /// The token forwarded to a backend for a session's user (ID-4): subject the user,
    /// the session's tenant, the scopes of the user's role, audience `audience`.
    pub fn session_token(&self, session: &Session, audience: &str) -> Result<String, TokenError> {
        let scopes = session.scopes();
        self.mint(&TokenGrant {
            subject: session.user_name.clone(),
            tenant: session.tenant.clone(),
            audiences: vec![audience.to_string()],
            scopes,
            client_id: None,
            actor: None,
        })
    }

    /// Verifies a presented access token: signature by a published key, expiry (with
    /// `clock_skew`), issuer, subject and tenant claim. Never waits: the keys are in memory.
    /// Check the audience with [`check_audience`].
    pub fn verify(&self, token: &str) -> Result<AccessToken, TokenError> {
        tokens::verify(
            &self.inner.keys.current(),
            &self.inner.issuer,
            token,
            self.inner.config.clock_skew.as_secs(),
        )
    }

    /// The JSON Web Key Set of the published keys.
    pub fn jwks(&self) -> Value {
        self.inner.keys.jwks()
    }

    /// Makes a new signing key now and retires the current one (which stays published
    /// until its tokens have expired).
    pub async fn rotate_keys(&self) -> Result<(), IdentityError> {
        self.inner.keys.rotate_now().await
    }

    /// The OpenID Provider metadata (`/.well-known/openid-configuration`).
    pub fn openid_configuration(&self) -> Value {
        let iss = &self.inner.issuer;
        json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oauth/authorize"),
            "token_endpoint": format!("{iss}/uaa/oauth/token"),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "response_types_supported": ["code"],
            "grant_types_supported": [
                oauth::AUTHORIZATION_CODE, oauth::CLIENT_CREDENTIALS,
                oauth::REFRESH_TOKEN, oauth::TOKEN_EXCHANGE,
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [keys::ALGORITHM],
            "token_endpoint_auth_signing_alg_values_supported": [keys::ALGORITHM],
            "scopes_supported": ["portico"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "scope", "ten", "client_id", "act"],
        })
    }

    // ---- housekeeping ---------------------------------------------------------------

    /// One round of housekeeping: key rotation and reload, session write-back and cache
    /// sweep, purging of expired codes, refresh tokens and sessions. Failures are logged.
    pub async fn maintain(&self) {
        if let Err(e) = self.inner.keys.rotate_if_due().await {
            tracing::warn!(error = %e, "cannot rotate or reload the signing keys");
        }
        self.inner.sessions.maintain().await;
        let now = now_ms();
        let store = &self.inner.store;
        if let Err(e) = store.purge_authorization_codes(now).await {
            tracing::warn!(error = %e, "cannot purge expired authorization codes");
        }
        if let Err(e) = store.purge_refresh_tokens(now).await {
            tracing::warn!(error = %e, "cannot purge expired refresh tokens");
        }
    }
}

fn spawn_maintenance(inner: Weak<Inner>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            Identity { inner }.maintain().await;
        }
    });
}
