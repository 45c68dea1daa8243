//! The OAuth 2.0 grants (ID-3): client credentials, authorization code with PKCE `S256`,
//! refresh with rotation (a reused refresh token revokes its whole chain), and token
//! exchange (RFC 8693) of one of our access tokens for one with another audience.
//!
//! Errors are RFC 6749 §5.2 error codes; the HTTP layer renders them.

use std::collections::BTreeSet;
use std::time::Duration;

use portico_store::{CodeTake, OAuthClientRecord, RefreshTokenRecord};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::secret::{ms, now_ms, random_token, sha256_b64url, sha256_hex};
use crate::tokens::TokenGrant;
use crate::Identity;

mod authorize;

pub use authorize::{AuthorizeError, AuthorizeRequest};

pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The gateway-wide audience of tokens that did not ask for a narrower one.
pub const DEFAULT_AUDIENCE: &str = "portico";

/// A token request, as the form fields of RFC 6749 §4 and RFC 8693 §2.1 name them. Client
/// credentials from HTTP Basic are put in `client_id` and `client_secret` by the caller.
/// No `Debug`: it holds secrets.
#[derive(Default, Clone, Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    pub grant_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1). Its `Debug` hides the
/// tokens.
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target` or `server_error`.
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            error,
            description: description.into(),
        }
    }

    /// 401 for a failed client authentication, 500 for our own failure, else 400.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}

fn invalid_request(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_request", d)
}
fn invalid_client() -> OAuthError {
    OAuthError::new("invalid_client", "client authentication failed")
}
fn invalid_grant(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_grant", d)
}
fn invalid_scope(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_scope", d)
}
fn server_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "token endpoint failure");
    OAuthError::new("server_error", "the authorization server failed; try again")
}

/// The scopes of a space-separated list, each checked against RFC 6749 §3.3.
fn parse_scopes(s: &str) -> Result<BTreeSet<String>, OAuthError> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
            {
                Ok(t.to_string())
            } else {
                Err(invalid_scope(
                    "a scope contains a character that is not allowed",
                ))
            }
        })
        .collect()
}

/// The scopes requested in `scope`, which must all be in `allowed`; without `scope`,
/// `default`.
fn narrow_scopes(
    scope: Option<&str>,
    allowed: &BTreeSet<String>,
    default: &BTreeSet<String>,
) -> Result<BTreeSet<String>, OAuthError> {
    let Some(scope) = scope.filter(|s| !s.trim().is_empty()) else {
        return Ok(default.clone());
    };
    let requested = parse_scopes(scope)?;
    match requested.iter().find(|s| !allowed.contains(*s)) {
        Some(s) => Err(invalid_scope(format!("scope \"{s}\" is not allowed here"))),
        None => Ok(requested),
    }
}

/// `portico`, `api:{name[-provider]}` or `webapp:{name[-provider]}`.
pub fn is_audience(a: &str) -> bool {
    if a == DEFAULT_AUDIENCE {
        return true;
    }
    let Some(key) = a.strip_prefix("api:").or_else(|| a.strip_prefix("webapp:")) else {
        return false;
    };
    let parts: Vec<&str> = key.split('-').collect();
    parts.len() <= 2 && parts.iter().all(|p| portico_store::is_name(p))
}

/// The audience a request asked for (`audience`, else `resource`), else `portico`.
fn requested_audience(request: &TokenRequest) -> Result<Vec<String>, OAuthError> {
    let asked = request
        .audience
        .as_deref()
        .or(request.resource.as_deref())
        .filter(|a| !a.is_empty());
    match asked {
        None => Ok(vec![DEFAULT_AUDIENCE.to_string()]),
        Some(a) if is_audience(a) => Ok(vec![a.to_string()]),
        Some(a) => Err(OAuthError::new(
            "invalid_target",
            format!("\"{a}\" is not an audience here: use portico, api:NAME or webapp:KEY"),
        )),
    }
}

fn secret_matches(secret: &str, hash: &str) -> bool {
    let presented = sha256_hex(secret);
    presented.len() == hash.len() && bool::from(presented.as_bytes().ct_eq(hash.as_bytes()))
}

/// PKCE verifiers: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn set_of(items: &[String]) -> BTreeSet<String> {
    items.iter().cloned().collect()
}

/// A client to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    pub tenant: String,
    pub name: String,
    /// A confidential client gets a secret; a public one (a browser app) uses PKCE only.
    pub confidential: bool,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
}

/// A registered client's credentials. The secret is shown once: only its hash is kept.
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Registers an active client of `new.tenant` with a new id (and secret).
    pub async fn register_client(
        &self,
        new: &NewClient,
    ) -> Result<ClientCredentials, crate::IdentityError> {
        use crate::IdentityError::Invalid;
        if !portico_store::is_name(&new.tenant) {
            return Err(Invalid(format!(
                "\"{}\" is not a valid tenant name",
                new.tenant
            )));
        }
        let known = [
            CLIENT_CREDENTIALS,
            AUTHORIZATION_CODE,
            REFRESH_TOKEN,
            TOKEN_EXCHANGE,
        ];
        if let Some(g) = new
            .grant_types
            .iter()
            .find(|g| !known.contains(&g.as_str()))
        {
            return Err(Invalid(format!("grant type \"{g}\" is not supported")));
        }
        if !new.confidential
            && new
                .grant_types
                .iter()
                .any(|g| g == CLIENT_CREDENTIALS || g == TOKEN_EXCHANGE)
        {
            return Err(Invalid(
                "a public client can only use authorization_code and refresh_token".into(),
            ));
        }
        parse_scopes(&new.scopes.join(" ")).map_err(|e| Invalid(e.description))?;
        let client_id = format!("{}-{}", new.tenant, random_token(9));
        let secret = new.confidential.then(|| random_token(32));
        let record = OAuthClientRecord {
            client_id: client_id.clone(),
            tenant: new.tenant.clone(),
            secret_hash: secret.as_deref().map(sha256_hex),
            name: new.name.clone(),
            grant_types: new.grant_types.clone(),
            scopes: new.scopes.clone(),
            redirect_uris: new.redirect_uris.clone(),
            active: true,
            created_ms: now_ms(),
        };
        self.inner.store.add_oauth_client(&record).await?;
        Ok(ClientCredentials {
            client_id,
            client_secret: secret,
        })
    }

    /// The token endpoint: runs the request's grant. `tenant` is the tenant of the host
    /// the request came to (`None` on a gateway host): a client of another tenant is
    /// refused there.
    pub async fn token(
        &self,
        request: &TokenRequest,
        tenant: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let grant = request.grant_type.as_str();
        if ![
            CLIENT_CREDENTIALS,
            AUTHORIZATION_CODE,
            REFRESH_TOKEN,
            TOKEN_EXCHANGE,
        ]
        .contains(&grant)
        {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                if grant.is_empty() {
                    "grant_type is missing".to_string()
                } else {
                    format!("grant type \"{grant}\" is not supported")
                },
            ));
        }
        let client = self.authenticate_client(request, tenant).await?;
        if !client.grant_types.iter().any(|g| g == grant) {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!("the client may not use the grant type \"{grant}\""),
            ));
        }
        match grant {
            CLIENT_CREDENTIALS => self.client_credentials(request, &client),
            AUTHORIZATION_CODE => self.authorization_code(request, &client).await,
            REFRESH_TOKEN => self.refresh(request, &client).await,
            _ => self.exchange(request, &client),
        }
    }

    /// The client named by the request, if it is active, of the host's tenant, and
    /// proves its secret (a public client has none: it may only use PKCE grants).
    async fn authenticate_client(
        &self,
        request: &TokenRequest,
        tenant: Option<&str>,
    ) -> Result<OAuthClientRecord, OAuthError> {
        let client_id = request
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(invalid_client)?;
        let client = self
            .inner
            .store
            .oauth_client(client_id)
            .await
            .map_err(server_error)?
            .ok_or_else(invalid_client)?;
        if !client.active || tenant.is_some_and(|t| t != client.tenant) {
            return Err(invalid_client());
        }
        match (&client.secret_hash, request.client_secret.as_deref()) {
            (Some(hash), Some(secret)) if secret_matches(secret, hash) => Ok(client),
            (None, None)
                if request.grant_type == AUTHORIZATION_CODE
                    || request.grant_type == REFRESH_TOKEN =>
            {
                Ok(client)
            }
            _ => Err(invalid_client()),
        }
    }

    fn client_credentials(
        &self,
        request: &TokenRequest,
        client: &OAuthClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let allowed = set_of(&client.scopes);
        let scopes = narrow_scopes(request.scope.as_deref(), &allowed, &allowed)?;
        let grant = TokenGrant {
            subject: client.client_id.clone(),
            tenant: client.tenant.clone(),
            audiences: requested_audience(request)?,
            scopes: scopes.iter().cloned().collect(),
            client_id: Some(client.client_id.clone()),
            actor: None,
        };
        self.respond(&grant, None, None)
    }

    async fn authorization_code(
        &self,
        request: &TokenRequest,
        client: &OAuthClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let code = request
            .code
            .as_deref()
            .ok_or_else(|| invalid_request("code is missing"))?;
        let verifier = request
            .code_verifier
            .as_deref()
            .ok_or_else(|| invalid_request("code_verifier is missing (PKCE is required)"))?;
        let taken = self
            .inner
            .store
            .take_authorization_code(&sha256_hex(code))
            .await
            .map_err(server_error)?;
        let record = match taken {
            CodeTake::Taken(r) => r,
            CodeTake::AlreadyUsed(_) => return Err(invalid_grant("the code was used already")),
            CodeTake::Unknown => return Err(invalid_grant("unknown code")),
        };
        if record.expires_ms < now_ms() {
            return Err(invalid_grant("the code has expired"));
        }
        if record.client_id != client.client_id {
            return Err(invalid_grant("the code was issued to another client"));
        }
        if request.redirect_uri.as_deref() != Some(record.redirect_uri.as_str()) {
            return Err(invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        let challenge = sha256_b64url(verifier.as_bytes());
        if !is_code_verifier(verifier)
            || !bool::from(challenge.as_bytes().ct_eq(record.code_challenge.as_bytes()))
        {
            return Err(invalid_grant(
                "code_verifier does not match the code challenge",
            ));
        }
        if self
            .inner
            .store
            .user(&record.tenant, &record.user_name)
            .await
            .map_err(server_error)?
            .is_none()
        {
            return Err(invalid_grant("the user no longer exists"));
        }
        let grant = TokenGrant {
            subject: record.user_name.clone(),
            tenant: record.tenant.clone(),
            audiences: requested_audience(request)?,
            scopes: record.scopes.clone(),
            client_id: Some(client.client_id.clone()),
            actor: None,
        };
        let refresh = if client.grant_types.iter().any(|g| g == REFRESH_TOKEN) {
            Some(self.new_refresh_chain(&grant, client).await?)
        } else {
            None
        };
        self.respond(&grant, refresh, None)
    }

    /// Starts a refresh-token chain for `grant`; returns the token.
    async fn new_refresh_chain(
        &self,
        grant: &TokenGrant,
        client: &OAuthClientRecord,
    ) -> Result<String, OAuthError> {
        let token = random_token(32);
        let now = now_ms();
        let record = RefreshTokenRecord {
            token_hash: sha256_hex(&token),
            chain_id: random_token(16),
            client_id: client.client_id.clone(),
            tenant: grant.tenant.clone(),
            subject: grant.subject.clone(),
            scopes: grant.scopes.clone(),
            created_ms: now,
            expires_ms: now + ms(self.inner.config.refresh_token_lifetime),
            revoked: false,
        };
        self.inner
            .store
            .add_refresh_token(&record)
            .await
            .map_err(server_error)?;
        Ok(token)
    }

    async fn refresh(
        &self,
        request: &TokenRequest,
        client: &OAuthClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let presented = request
            .refresh_token
            .as_deref()
            .ok_or_else(|| invalid_request("refresh_token is missing"))?;
        let hash = sha256_hex(presented);
        let store = &self.inner.store;
        let old = store
            .refresh_token(&hash)
            .await
            .map_err(server_error)?
            .ok_or_else(|| invalid_grant("unknown refresh token"))?;
        if old.client_id != client.client_id || old.tenant != client.tenant {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if old.revoked {
            // A revoked token presented again: stolen, or replayed. End the whole grant.
            store
                .revoke_refresh_chain(&old.chain_id)
                .await
                .map_err(server_error)?;
            tracing::warn!(client = %client.client_id, "a revoked refresh token was presented; its chain is revoked");
            return Err(invalid_grant("the refresh token was revoked"));
        }
        let now = now_ms();
        if old.expires_ms < now {
            return Err(invalid_grant("the refresh token has expired"));
        }
        let held = set_of(&old.scopes);
        let scopes = narrow_scopes(request.scope.as_deref(), &held, &held)?;
        if store
            .user(&old.tenant, &old.subject)
            .await
            .map_err(server_error)?
            .is_none()
        {
            store
                .revoke_refresh_chain(&old.chain_id)
                .await
                .map_err(server_error)?;
            return Err(invalid_grant("the user no longer exists"));
        }
        let token = random_token(32);
        let new = RefreshTokenRecord {
            token_hash: sha256_hex(&token),
            created_ms: now,
            revoked: false,
            ..old.clone()
        };
        if !store
            .rotate_refresh_token(&hash, &new)
            .await
            .map_err(server_error)?
        {
            return Err(invalid_grant("the refresh token was revoked"));
        }
        let grant = TokenGrant {
            subject: old.subject.clone(),
            tenant: old.tenant.clone(),
            audiences: requested_audience(request)?,
            scopes: scopes.into_iter().collect(),
            client_id: Some(client.client_id.clone()),
            actor: None,
        };
        self.respond(&grant, Some(token), None)
    }

    fn exchange(
        &self,
        request: &TokenRequest,
        client: &OAuthClientRecord,
    ) -> Result<TokenResponse, OAuthError> {
        let subject_token = request
            .subject_token
            .as_deref()
            .ok_or_else(|| invalid_request("subject_token is missing"))?;
        match request.subject_token_type.as_deref() {
            Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
            _ => {
                return Err(invalid_request(format!(
                    "subject_token_type must be {ACCESS_TOKEN_TYPE}"
                )))
            }
        }
        let subject = self
            .verify(subject_token)
            .map_err(|e| invalid_grant(format!("subject_token: {e}")))?;
        if subject.tenant != client.tenant {
            return Err(invalid_grant(
                "subject_token belongs to another tenant than the client",
            ));
        }
        let held = set_of(&subject.scopes);
        let scopes = narrow_scopes(request.scope.as_deref(), &held, &held)?;
        // An exchange names one other app or API; the gateway-wide audience, good for
        // every API of the tenant, is not to be had this way unless the token had it.
        let audiences = requested_audience(request)?;
        let widens = audiences.iter().any(|a| a == DEFAULT_AUDIENCE)
            && !subject.audiences.iter().any(|a| a == DEFAULT_AUDIENCE);
        if widens {
            return Err(OAuthError::new(
                "invalid_target",
                "an exchanged token names one app or API (api:NAME or webapp:KEY), not portico",
            ));
        }
        let grant = TokenGrant {
            subject: subject.subject.clone(),
            tenant: subject.tenant.clone(),
            audiences,
            scopes: scopes.into_iter().collect(),
            client_id: Some(client.client_id.clone()),
            actor: Some(client.client_id.clone()),
        };
        // The new token ends when the one it was exchanged for does, at the latest: an
        // exchange must not become a way to keep a user's access alive forever.
        let left = u64::try_from(subject.expires_at - now_ms() / 1000).unwrap_or(0);
        let lifetime = self
            .inner
            .config
            .access_token_lifetime
            .min(Duration::from_secs(left));
        let access_token = self.mint_for(&grant, lifetime).map_err(server_error)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.as_secs(),
            refresh_token: None,
            scope: grant.scopes.join(" "),
            issued_token_type: Some(ACCESS_TOKEN_TYPE),
        })
    }

    fn respond(
        &self,
        grant: &TokenGrant,
        refresh_token: Option<String>,
        issued_token_type: Option<&'static str>,
    ) -> Result<TokenResponse, OAuthError> {
        let access_token = self.mint(grant).map_err(server_error)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.inner.config.access_token_lifetime.as_secs(),
            refresh_token,
            scope: grant.scopes.join(" "),
            issued_token_type,
        })
    }
}

/// Scopes that say who a user is (`portico`, `role:…`): a user-delegated token holds them
/// only from the user's role, never from the client's registration.
fn is_user_scope(scope: &str) -> bool {
    scope == "portico" || scope.starts_with("role:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_within_what_is_allowed() {
        let allowed: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(narrow_scopes(None, &allowed, &allowed).unwrap(), allowed);
        assert_eq!(
            narrow_scopes(Some("b"), &allowed, &allowed).unwrap(),
            ["b".to_string()].into_iter().collect()
        );
        assert_eq!(
            narrow_scopes(Some("a c"), &allowed, &allowed)
                .unwrap_err()
                .error,
            "invalid_scope"
        );
        assert!(parse_scopes("a\"b").is_err());
    }

    #[test]
    fn audiences_name_portico_an_api_or_a_web_app() {
        for ok in ["portico", "api:iot", "api:iot-xyz", "webapp:hello"] {
            assert!(is_audience(ok), "{ok}");
        }
        for bad in ["", "api:", "api:a-b-c", "https://x", "webapp:Shop"] {
            assert!(!is_audience(bad), "{bad}");
        }
    }

    #[test]
    fn pkce_verifiers() {
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }
}
