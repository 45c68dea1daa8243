//! The authorization endpoint (RFC 6749 §4.1.1 with PKCE, RFC 7636): a user with a session
//! lets a registered client act for them, and is sent back to the client's redirect URI with
//! a code or an error.

use std::collections::BTreeSet;

use portico_store::AuthorizationCodeRecord;
use serde::Deserialize;

use super::{is_code_verifier, is_user_scope, narrow_scopes, set_of, AUTHORIZATION_CODE};
use crate::secret::{ms, now_ms, random_token, sha256_hex};
use crate::sessions::Session;
use crate::Identity;

/// An authorization request (RFC 6749 §4.1.1 with RFC 7636).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// Why an authorization request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted: show the message, do not
    /// redirect (RFC 6749 §4.1.2.1).
    Refused(String),
    /// Send the user agent to this URL, which carries `error` and `state`.
    Redirect(String),
    Server(String),
}

impl Identity {
    /// The authorization endpoint for a user with a session: checks the request and
    /// returns the URL to send the user agent to, with a new code (or an error) and the
    /// request's `state`.
    pub async fn authorize(
        &self,
        session: &Session,
        request: &AuthorizeRequest,
    ) -> Result<String, AuthorizeError> {
        let client = match request.client_id.as_deref() {
            Some(id) => self
                .inner
                .store
                .oauth_client(id)
                .await
                .map_err(|e| AuthorizeError::Server(e.to_string()))?,
            None => None,
        };
        // A client of another tenant is as good as unknown here.
        let Some(client) = client.filter(|c| c.active && c.tenant == session.tenant) else {
            return Err(AuthorizeError::Refused("unknown client".into()));
        };
        let redirect_uri = match request.redirect_uri.as_deref() {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            _ => {
                return Err(AuthorizeError::Refused(
                    "the redirect URI is not registered for this client".into(),
                ))
            }
        };
        let state = request.state.as_deref();
        let fail = |error: &str, description: &str| {
            AuthorizeError::Redirect(with_query(
                &redirect_uri,
                &[
                    ("error", Some(error)),
                    ("error_description", Some(description)),
                    ("state", state),
                ],
            ))
        };
        if request.response_type.as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        if !client.grant_types.iter().any(|g| g == AUTHORIZATION_CODE) {
            return Err(fail(
                "unauthorized_client",
                "the client may not use the authorization code grant",
            ));
        }
        let challenge = match (
            request.code_challenge.as_deref(),
            request.code_challenge_method.as_deref(),
        ) {
            (Some(c), Some("S256")) if c.len() == 43 && is_code_verifier(c) => c.to_string(),
            _ => {
                return Err(fail(
                    "invalid_request",
                    "PKCE is required: code_challenge with code_challenge_method S256",
                ))
            }
        };
        let role_scopes: BTreeSet<String> = session.scopes().into_iter().collect();
        // Scopes that speak for the user (`portico`, `role:*`) come from the user's role
        // alone: a client registered with `role:admin` must not lift a plain user.
        let client_scopes: BTreeSet<String> = set_of(&client.scopes)
            .into_iter()
            .filter(|s| !is_user_scope(s))
            .collect();
        let allowed: BTreeSet<String> = client_scopes.union(&role_scopes).cloned().collect();
        let mut scopes = match narrow_scopes(request.scope.as_deref(), &allowed, &client_scopes) {
            Ok(s) => s,
            Err(e) => return Err(fail(e.error, &e.description)),
        };
        scopes.extend(role_scopes);

        let code = random_token(32);
        let record = AuthorizationCodeRecord {
            code_hash: sha256_hex(&code),
            client_id: client.client_id.clone(),
            tenant: session.tenant.clone(),
            user_name: session.user_name.clone(),
            code_challenge: challenge,
            redirect_uri: redirect_uri.clone(),
            scopes: scopes.into_iter().collect(),
            expires_ms: now_ms() + ms(self.inner.config.authorization_code_lifetime),
            used: false,
        };
        self.inner
            .store
            .add_authorization_code(&record)
            .await
            .map_err(|e| AuthorizeError::Server(e.to_string()))?;
        Ok(with_query(
            &redirect_uri,
            &[("code", Some(&code)), ("state", state)],
        ))
    }
}

/// `uri` with the given query parameters appended (those that are `Some`).
fn with_query(uri: &str, params: &[(&str, Option<&str>)]) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // Everything but RFC 3986's unreserved characters.
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        if let Some(v) = value {
            out.push(sep);
            out.push_str(name);
            out.push('=');
            out.push_str(&utf8_percent_encode(v, QUERY_VALUE).to_string());
            sep = '&';
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_carry_the_parameters_percent_encoded() {
        assert_eq!(
            with_query(
                "https://a/cb?x=1",
                &[("code", Some("c d")), ("state", None)]
            ),
            "https://a/cb?x=1&code=c%20d"
        );
    }
}
