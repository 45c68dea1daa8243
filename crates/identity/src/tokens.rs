//! Access tokens: ES256 JWTs with `iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `scope` and
//! `ten` (the tenant), plus `client_id` when a client asked for the token and `act` after
//! a token exchange.
//!
//! [`verify`] checks the signature against a published key, the expiry and the issuer,
//! and that `ten` names a tenant. The audience is checked separately by
//! [`check_audience`], because only the caller knows which audience it serves.

use std::fmt;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::KeySet;
use crate::secret::random_token;

/// Why a token was refused (or could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with an algorithm other than ES256")]
    WrongAlgorithm,
    #[error("the token's signing key is not published")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued here")]
    WrongIssuer,
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(&'static str),
    /// No `ten` claim, or one that is not a tenant name (ID-4: 403).
    #[error("the token has no valid tenant claim")]
    BadTenant,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    #[error("no signing key is available")]
    NoSigningKey,
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// What a new token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub subject: String,
    pub tenant: String,
    pub audiences: Vec<String>,
    pub scopes: Vec<String>,
    /// The OAuth client the token is issued to, if any.
    pub client_id: Option<String>,
    /// After a token exchange: the client acting on the subject's behalf (RFC 8693 `act`).
    pub actor: Option<String>,
}

/// A verified access token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub issuer: String,
    pub subject: String,
    pub tenant: String,
    pub audiences: Vec<String>,
    pub scopes: Vec<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub id: String,
    pub client_id: Option<String>,
    pub actor: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("subject", &self.subject)
            .field("tenant", &self.tenant)
            .field("audiences", &self.audiences)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a [String],
    exp: i64,
    iat: i64,
    jti: String,
    scope: String,
    ten: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<Actor<'a>>,
}

#[derive(Serialize)]
struct Actor<'a> {
    sub: &'a str,
}

/// The claims as presented: every field optional and loosely typed, so that a missing
/// or malformed claim is reported as such rather than as a malformed token.
#[derive(Deserialize)]
struct PresentedClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    jti: Option<Value>,
    scope: Option<Value>,
    ten: Option<Value>,
    client_id: Option<Value>,
    act: Option<Value>,
}

/// Signs a token for `grant`, issued at `now` (unix seconds), living `lifetime_s`.
pub fn mint(
    keys: &KeySet,
    issuer: &str,
    grant: &TokenGrant,
    now: i64,
    lifetime_s: i64,
) -> Result<String, TokenError> {
    let key = keys.signing.as_ref().ok_or(TokenError::NoSigningKey)?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    let claims = Claims {
        iss: issuer,
        sub: &grant.subject,
        aud: &grant.audiences,
        exp: now + lifetime_s,
        iat: now,
        jti: random_token(16),
        scope: grant.scopes.join(" "),
        ten: &grant.tenant,
        client_id: grant.client_id.as_deref(),
        act: grant.actor.as_deref().map(|sub| Actor { sub }),
    };
    jsonwebtoken::encode(&header, &claims, &key.encoding)
        .map_err(|e| TokenError::Signing(e.to_string()))
}

/// Verifies `token`: an ES256 signature by a published key, not expired (with
/// `leeway_s` of tolerance), issued by `issuer`, with a subject and a valid `ten`.
pub fn verify(
    keys: &KeySet,
    issuer: &str,
    token: &str,
    leeway_s: u64,
) -> Result<AccessToken, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::ES256 {
        return Err(TokenError::WrongAlgorithm);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.key(&kid).ok_or(TokenError::UnknownKey)?;

    let mut validation = Validation::new(Algorithm::ES256);
    validation.leeway = leeway_s;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<PresentedClaims>(token, &key.decoding, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => {
                TokenError::MissingClaim("exp")
            }
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        },
    )?;
    let c = data.claims;

    if c.iss.as_ref().and_then(Value::as_str) != Some(issuer) {
        return Err(TokenError::WrongIssuer);
    }
    let tenant = match c.ten.as_ref().and_then(Value::as_str) {
        Some(t) if portico_store::is_name(t) => t.to_string(),
        _ => return Err(TokenError::BadTenant),
    };
    let subject = c
        .sub
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::MissingClaim("sub"))?
        .to_string();
    let audiences = match c.aud {
        Some(Value::String(a)) => vec![a],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(a) => Ok(a),
                _ => Err(TokenError::Malformed),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(TokenError::MissingClaim("aud")),
    };
    let scopes = match c.scope {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        None => Vec::new(),
        Some(_) => return Err(TokenError::Malformed),
    };
    let number = |v: &Option<Value>| v.as_ref().and_then(Value::as_i64);
    Ok(AccessToken {
        issuer: issuer.to_string(),
        subject,
        tenant,
        audiences,
        scopes,
        issued_at: number(&c.iat).unwrap_or(0),
        expires_at: number(&c.exp).ok_or(TokenError::MissingClaim("exp"))?,
        id: c
            .jti
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        client_id: c
            .client_id
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_string),
        actor: c
            .act
            .as_ref()
            .and_then(|a| a.get("sub"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Ok when the token is meant for one of `expected`.
pub fn check_audience(token: &AccessToken, expected: &[&str]) -> Result<(), TokenError> {
    if token
        .audiences
        .iter()
        .any(|a| expected.iter().any(|e| e == a))
    {
        Ok(())
    } else {
        Err(TokenError::WrongAudience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const ISS: &str = "https://gateway.eu1.portico.localhost";

    fn keys() -> KeySet {
        crate::keys::test_key_set()
    }

    fn grant() -> TokenGrant {
        TokenGrant {
            subject: "alice".into(),
            tenant: "abc".into(),
            audiences: vec!["api:iot-xyz".into()],
            scopes: vec!["portico".into(), "role:user".into()],
            client_id: Some("c1".into()),
            actor: None,
        }
    }

    fn now() -> i64 {
        crate::secret::now_ms() / 1000
    }

    /// Re-signs `claims` with the test key under the header of `token`.
    fn resign(keys: &KeySet, claims: &Value) -> String {
        let key = keys.signing.as_ref().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    fn claims_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_every_claim() {
        let keys = keys();
        let token = mint(&keys, ISS, &grant(), now(), 1800).unwrap();
        let claims = claims_of(&token);
        for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "scope", "ten"] {
            assert!(claims.get(claim).is_some(), "{claim} in {claims}");
        }
        let t = verify(&keys, ISS, &token, 0).unwrap();
        assert_eq!(t.subject, "alice");
        assert_eq!(t.tenant, "abc");
        assert_eq!(t.scopes, ["portico", "role:user"]);
        assert_eq!(t.expires_at - t.issued_at, 1800);
        assert_eq!(t.client_id.as_deref(), Some("c1"));
        assert!(check_audience(&t, &["api:iot-xyz", "portico"]).is_ok());
        assert_eq!(
            check_audience(&t, &["api:other"]),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() {
        let keys = keys();
        let token = mint(&keys, ISS, &grant(), now(), 1800).unwrap();

        // A changed payload under the old signature.
        let mut claims = claims_of(&token);
        claims["ten"] = "xyz".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&keys, ISS, &tampered, 0).unwrap_err(),
            TokenError::BadSignature
        );

        let expired = mint(&keys, ISS, &grant(), now() - 3600, 1800).unwrap();
        assert_eq!(
            verify(&keys, ISS, &expired, 30).unwrap_err(),
            TokenError::Expired
        );

        assert_eq!(
            verify(&keys, "https://elsewhere", &token, 0).unwrap_err(),
            TokenError::WrongIssuer
        );
        let other_keys = crate::keys::test_key_set();
        assert_eq!(
            verify(&other_keys, ISS, &token, 0).unwrap_err(),
            TokenError::UnknownKey
        );
        assert_eq!(
            verify(&keys, ISS, "not.a.jwt", 0).unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(
            verify(&keys, ISS, "", 0).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn a_missing_or_malformed_tenant_claim_is_its_own_error() {
        let keys = keys();
        let token = mint(&keys, ISS, &grant(), now(), 1800).unwrap();
        let mut claims = claims_of(&token);
        claims.as_object_mut().unwrap().remove("ten");
        assert_eq!(
            verify(&keys, ISS, &resign(&keys, &claims), 0).unwrap_err(),
            TokenError::BadTenant
        );
        for bad in [Value::from("Not-A-Tenant"), Value::from(7), Value::from("")] {
            claims["ten"] = bad;
            assert_eq!(
                verify(&keys, ISS, &resign(&keys, &claims), 0).unwrap_err(),
                TokenError::BadTenant
            );
        }
    }

    #[test]
    fn tokens_with_another_algorithm_are_refused() {
        let keys = keys();
        let claims = claims_of(&mint(&keys, ISS, &grant(), now(), 1800).unwrap());
        let mut header = Header::new(Algorithm::HS256);
        header.kid = keys.signing.as_ref().map(|k| k.kid.clone());
        let hs = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        assert_eq!(
            verify(&keys, ISS, &hs, 0).unwrap_err(),
            TokenError::WrongAlgorithm
        );
    }
}
