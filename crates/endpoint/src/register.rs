//! Registration (RS-9): trading the one-time code an administrator handed out for the
//! endpoint's credentials, at the gateway API's `/api/endpointregistration/v1/register`.

use std::path::Path;

use crate::credentials::{Credentials, CredentialsError};
use crate::http_client::HttpError;
use crate::Dialer;

pub const REGISTER_PATH: &str = "/api/endpointregistration/v1/register";

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the registration code is empty")]
    EmptyCode,
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The backend's own words, e.g. that the code is wrong, used or expired.
    #[error("the backend refused the registration ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the registration answer is not valid: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Save(#[from] CredentialsError),
}

/// What registration tells about the endpoint, besides the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub tenant: String,
    pub endpoint: String,
    pub kind: String,
    pub client_id: String,
}

/// Posts the code to the API host (`api` is a dialer [`Dialer::towards`] it) and writes the
/// credentials to `path` (0600, atomically). The secret is never returned nor printed.
pub async fn register(api: &Dialer, code: &str, path: &Path) -> Result<Registered, RegisterError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(RegisterError::EmptyCode);
    }
    let body = serde_json::json!({ "code": code });
    let answer = api
        .send_json(http::Method::POST, REGISTER_PATH, None, Some(&body))
        .await?;
    if !answer.is_success() {
        return Err(RegisterError::Refused {
            status: answer.status,
            message: answer.message(),
        });
    }
    let credentials = parse_answer(&answer.body)?;
    credentials.save(path)?;
    Ok(Registered {
        tenant: credentials.tenant.clone().unwrap_or_default(),
        endpoint: credentials.endpoint.clone().unwrap_or_default(),
        kind: credentials.kind.clone().unwrap_or_default(),
        client_id: credentials.client_id,
    })
}

#[derive(serde::Deserialize)]
struct Answer {
    tenant: String,
    endpoint: String,
    kind: String,
    client_id: String,
    client_secret: String,
}

fn parse_answer(body: &[u8]) -> Result<Credentials, RegisterError> {
    // serde's message could quote the secret; name only what is missing.
    let a: Answer = serde_json::from_slice(body).map_err(|_| {
        RegisterError::BadAnswer(
            "expected tenant, endpoint, kind, client_id and client_secret".into(),
        )
    })?;
    let printable = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
    if ![&a.tenant, &a.endpoint, &a.client_id, &a.client_secret]
        .iter()
        .all(|s| printable(s))
    {
        return Err(RegisterError::BadAnswer(
            "a field is empty, too long or holds control characters".into(),
        ));
    }
    if a.kind != "device" && a.kind != "service" {
        return Err(RegisterError::BadAnswer(
            "kind is neither device nor service".into(),
        ));
    }
    Ok(Credentials {
        client_id: a.client_id,
        client_secret: a.client_secret,
        tenant: Some(a.tenant),
        endpoint: Some(a.endpoint),
        kind: Some(a.kind),
        unconfirmed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_without_echoing_the_secret() {
        let good = br#"{"tenant":"abc","endpoint":"ep","kind":"service","client_id":"c","client_secret":"s3cr3t"}"#;
        let c = parse_answer(good).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("ep"));
        for bad in [
            &br#"{"tenant":"abc","endpoint":"ep","kind":"robot","client_id":"c","client_secret":"s3cr3t"}"#[..],
            br#"{"tenant":"abc","endpoint":"","kind":"device","client_id":"c","client_secret":"s3cr3t"}"#,
            br#"{"client_secret":"s3cr3t"}"#,
        ] {
            let msg = parse_answer(bad).unwrap_err().to_string();
            assert!(!msg.contains("s3cr3t"), "{msg}");
        }
    }
}
