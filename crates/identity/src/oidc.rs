//! Logging in through a tenant's external OpenID Connect provider (ID-6): the
//! authorization code flow with PKCE and a nonce, as a relying party. Portico sends the
//! browser to the provider, takes the code back at `/login/oidc/callback`, exchanges it,
//! and verifies the ID token (signature by the provider's published keys, issuer,
//! audience, expiry, nonce) before it trusts the `sub` in it.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use std::time::Duration;

/// A tenant's external provider, as an operator configured it.
#[derive(Clone)]
pub struct ExternalProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ExternalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What Portico keeps between sending the browser away and its return: checked against
/// the `state` the provider echoes, and never shown to the browser except `state`.
#[derive(Clone)]
pub struct PendingLogin {
    pub state: String,
    nonce: String,
    pkce_verifier: String,
}

impl PendingLogin {
    /// The login in flight as one cookie-safe value (the browser keeps it between leaving
    /// for the provider and coming back, so that any node can finish the login).
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.pkce_verifier)
    }

    /// The value [`PendingLogin::encode`] made; `None` for anything else.
    pub fn decode(value: &str) -> Option<PendingLogin> {
        let mut parts = value.split('.');
        let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
        let well_formed = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if parts.next().is_some() || ![state, nonce, verifier].into_iter().all(well_formed) {
            return None;
        }
        Some(PendingLogin {
            state: state.to_string(),
            nonce: nonce.to_string(),
            pkce_verifier: verifier.to_string(),
        })
    }
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider's configuration is invalid: {0}")]
    Configuration(String),
    #[error("cannot read the provider's metadata from {issuer}: {reason}")]
    Discovery { issuer: String, reason: String },
    #[error("the provider refused the authorization code: {0}")]
    Exchange(String),
    #[error("the provider's ID token was not accepted: {0}")]
    IdToken(String),
}

/// How long one call to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

fn http_client() -> Result<openidconnect::reqwest::Client, OidcError> {
    openidconnect::reqwest::ClientBuilder::new()
        // The flow's redirects are the browser's to follow, never the back channel's
        // (an open redirect there would be a server-side request forgery).
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(PROVIDER_TIMEOUT)
        .build()
        .map_err(|e| OidcError::Configuration(e.to_string()))
}

async fn client(
    provider: &ExternalProvider,
    redirect_uri: &str,
    http: &openidconnect::reqwest::Client,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    OidcError,
> {
    let issuer = IssuerUrl::new(provider.issuer.clone())
        .map_err(|e| OidcError::Configuration(format!("issuer: {e}")))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| OidcError::Discovery {
            issuer: provider.issuer.clone(),
            reason: e.to_string(),
        })?;
    let redirect = RedirectUrl::new(redirect_uri.to_string())
        .map_err(|e| OidcError::Configuration(format!("redirect URI: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(provider.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// The provider's authorization URL to send the browser to, and what to keep until it
/// comes back to `redirect_uri`.
pub async fn begin(
    provider: &ExternalProvider,
    redirect_uri: &str,
) -> Result<(String, PendingLogin), OidcError> {
    let http = http_client()?;
    let client = client(provider, redirect_uri, &http).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_string()))
        .add_scope(Scope::new("profile".to_string()))
        .set_pkce_challenge(challenge)
        .url();
    let pending = PendingLogin {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    };
    Ok((url.to_string(), pending))
}

/// Exchanges the `code` the browser brought back and verifies the ID token.
pub async fn finish(
    provider: &ExternalProvider,
    redirect_uri: &str,
    pending: PendingLogin,
    code: &str,
) -> Result<ExternalIdentity, OidcError> {
    let http = http_client()?;
    let client = client(provider, redirect_uri, &http).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| OidcError::Configuration(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
        .request_async(&http)
        .await
        .map_err(|e| OidcError::Exchange(e.to_string()))?;
    let id_token = response
        .id_token()
        .ok_or_else(|| OidcError::IdToken("the token response has no ID token".into()))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
        .map_err(|e| OidcError::IdToken(e.to_string()))?;
    Ok(ExternalIdentity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        // An address the provider has not verified could be anyone's: it does not name
        // the user then (the `sub` does).
        email: claims
            .email()
            .filter(|_| claims.email_verified() == Some(true))
            .map(|e| e.to_string()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::PendingLogin;

    #[test]
    fn a_pending_login_survives_its_cookie_and_nothing_else_decodes() {
        let pending = PendingLogin {
            state: "s-1_A".into(),
            nonce: "n2".into(),
            pkce_verifier: "v3-x".into(),
        };
        let back = PendingLogin::decode(&pending.encode()).unwrap();
        assert_eq!(back.encode(), pending.encode());
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b.c d",
            "a.b.c;",
            &"x".repeat(200),
        ] {
            assert!(PendingLogin::decode(bad).is_none(), "{bad:?}");
        }
    }
}
