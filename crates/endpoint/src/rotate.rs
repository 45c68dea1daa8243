//! Credential rotation (RS-9) without lock-out: the endpoint asks the backend for a new
//! OAuth client with its current token, saves the new credentials (0600, atomically) — only
//! then — fetches a token with them and confirms, which withdraws the old client.
//!
//! The backend accepts both clients between the two calls, and the file says which state
//! it is in: a failure before the save leaves the old credentials (the next attempt starts
//! over, and the backend withdraws the unused pending client); a failure after it leaves
//! the new credentials marked `unconfirmed`, and the next attempt only confirms them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::config::EndpointConfig;
use crate::connect::{ConnectError, Dialer};
use crate::credentials::{Credentials, CredentialsError};
use crate::http_client::HttpError;
use crate::token::TokenError;

pub const ROTATE_PATH: &str = "/api/remoteservices/v1/credentials/rotate";
pub const CONFIRM_PATH: &str = "/api/remoteservices/v1/credentials/confirm";

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("fetching a token with the {which} credentials failed: {source}")]
    Token {
        which: &'static str,
        source: TokenError,
    },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the backend refused to {step} ({status}): {message}")]
    Refused {
        step: &'static str,
        status: u16,
        message: String,
    },
    #[error("the backend's answer to the rotation is not valid: {0}")]
    BadAnswer(&'static str),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// What [`Rotator::maintain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintained {
    /// The credentials are younger than the configured age (or rotation is off).
    Fresh,
    /// New credentials were issued, saved and confirmed.
    Rotated { client_id: String },
    /// Credentials a rotation had saved were confirmed.
    Confirmed { client_id: String },
}

#[derive(Deserialize)]
struct NewClient {
    client_id: String,
    client_secret: String,
}

/// Rotates the credentials in the configured file through the configured API host.
pub struct Rotator {
    api: Dialer,
    token_dialer: Dialer,
    token_path: String,
    file: PathBuf,
    rotate_after: Option<Duration>,
}

impl Rotator {
    pub fn from_config(config: &EndpointConfig) -> Result<Self, RotateError> {
        Ok(Self::with_dialer(config, Dialer::from_config(config)?))
    }

    /// With a given dialer (its proxy and trusted roots), as the agent and tests have one.
    pub fn with_dialer(config: &EndpointConfig, dialer: Dialer) -> Self {
        Rotator {
            api: dialer.towards(config.api.clone()),
            token_dialer: dialer.towards(config.token_url.clone()),
            token_path: config.token_url.path_url(""),
            file: config.credentials_file.clone(),
            rotate_after: config.rotate_after,
        }
    }

    /// What the agent does at each (re)connect: confirm credentials a rotation saved, or
    /// rotate when the file is older than `rotate_after_days`.
    pub async fn maintain(&self) -> Result<Maintained, RotateError> {
        let current = Credentials::load(&self.file)?;
        if current.unconfirmed {
            return self.confirm(current).await;
        }
        match self.rotate_after {
            Some(limit) if age(&self.file)? >= limit => self.rotate(current).await,
            _ => Ok(Maintained::Fresh),
        }
    }

    /// Rotates now (`portico endpoint rotate`); credentials a rotation saved but did not
    /// confirm are confirmed instead, which finishes that rotation.
    pub async fn rotate_now(&self) -> Result<Maintained, RotateError> {
        let current = Credentials::load(&self.file)?;
        if current.unconfirmed {
            return self.confirm(current).await;
        }
        self.rotate(current).await
    }

    async fn rotate(&self, current: Credentials) -> Result<Maintained, RotateError> {
        let token = self.token(&current, "current").await?;
        let answer = self
            .api
            .send_json(http::Method::POST, ROTATE_PATH, Some(&token), None)
            .await?;
        if answer.status != 200 {
            return Err(RotateError::Refused {
                step: "rotate the credentials",
                status: answer.status,
                message: answer.message(),
            });
        }
        // serde's message could quote the secret; say only what is wrong.
        let fresh: NewClient = serde_json::from_slice(&answer.body)
            .map_err(|_| RotateError::BadAnswer("expected client_id and client_secret"))?;
        let printable =
            |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
        if !printable(&fresh.client_id) || !printable(&fresh.client_secret) {
            return Err(RotateError::BadAnswer(
                "a field is empty, too long or holds control characters",
            ));
        }
        let pending = Credentials {
            client_id: fresh.client_id,
            client_secret: fresh.client_secret,
            unconfirmed: true,
            ..current
        };
        pending.save(&self.file)?;
        tracing::info!(client = %pending.client_id, "new credentials saved; confirming them");
        match self.confirm(pending).await? {
            Maintained::Confirmed { client_id } => Ok(Maintained::Rotated { client_id }),
            other => Ok(other),
        }
    }

    /// Confirms saved, unconfirmed credentials with a token of their own, then marks them
    /// confirmed in the file.
    async fn confirm(&self, mut pending: Credentials) -> Result<Maintained, RotateError> {
        let token = self.token(&pending, "new").await?;
        let answer = self
            .api
            .send_json(http::Method::POST, CONFIRM_PATH, Some(&token), None)
            .await?;
        if answer.status != 200 {
            return Err(RotateError::Refused {
                step: "confirm the new credentials",
                status: answer.status,
                message: answer.message(),
            });
        }
        pending.unconfirmed = false;
        pending.save(&self.file)?;
        Ok(Maintained::Confirmed {
            client_id: pending.client_id,
        })
    }

    async fn token(
        &self,
        credentials: &Credentials,
        which: &'static str,
    ) -> Result<String, RotateError> {
        self.token_dialer
            .fetch_token_at(&self.token_path, credentials)
            .await
            .map(|t| t.value)
            .map_err(|source| RotateError::Token { which, source })
    }
}

/// How long ago the file was last written (a clock set back counts as no time).
fn age(file: &Path) -> Result<Duration, RotateError> {
    let modified = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .map_err(|source| CredentialsError::Read {
            path: file.to_path_buf(),
            source,
        })?;
    Ok(SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO))
}

/// The agent's hook at each (re)connect: rotates when due, logs the outcome. A failure
/// leaves credentials that work (see the module's comment); the next connect tries again.
pub(crate) async fn maintain_for(agent: &crate::Agent) {
    let rotator = Rotator::with_dialer(&agent.config, agent.dialer.clone());
    match rotator.maintain().await {
        Ok(Maintained::Fresh) => {}
        Ok(Maintained::Rotated { client_id }) => {
            tracing::info!(client = %client_id, "credentials rotated");
        }
        Ok(Maintained::Confirmed { client_id }) => {
            tracing::info!(client = %client_id, "rotated credentials confirmed");
        }
        Err(error) => {
            tracing::error!(%error, "credential rotation failed; the credentials in use keep working, the next connect tries again");
        }
    }
}
