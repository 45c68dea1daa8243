//! The connections API (`/api/remoteservices/v1/connections`) as a Service Endpoint calls it
//! for `portico connect` and `portico connections`: with the endpoint's own bearer token,
//! which the backend maps to the user the endpoint is bound to.

use std::net::IpAddr;

use serde::Deserialize;

use crate::config::EndpointConfig;
use crate::connect::{ConnectError, Dialer};
use crate::credentials::{Credentials, CredentialsError};
use crate::http_client::HttpError;
use crate::token::TokenError;

pub const CONNECTIONS_PATH: &str = "/api/remoteservices/v1/connections";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("fetching the token failed: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the backend refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the backend's answer is not what was expected: {0}")]
    BadAnswer(String),
    #[error("a connection id must be letters, digits, `-` or `_`")]
    BadId,
}

/// A local listener a connection needs, on the `side` (`service` or `device`) that opens it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ConnectionListener {
    pub side: String,
    pub local_port: u16,
    pub target_host: String,
    pub target_port: u16,
}

/// A connection session as the API shows it (fields this agent does not use are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub application: String,
    /// When the session times out, in milliseconds since the epoch.
    #[serde(default)]
    pub ends_ms: i64,
    #[serde(default)]
    pub ended_ms: Option<i64>,
    #[serde(default)]
    pub end_reason: Option<String>,
    /// The application's template (`ssh`, `rdp`, …), when the answer names it.
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub listeners: Vec<ConnectionListener>,
}

pub struct ConnectionsApi {
    api: Dialer,
    token_dialer: Dialer,
    token_path: String,
    credentials: Credentials,
}

impl ConnectionsApi {
    pub fn from_config(config: &EndpointConfig) -> Result<Self, ApiError> {
        let dialer = Dialer::from_config(config)?;
        Self::with_dialer(config, dialer)
    }

    /// With a given dialer (its proxy and trusted roots), e.g. in tests.
    pub fn with_dialer(config: &EndpointConfig, dialer: Dialer) -> Result<Self, ApiError> {
        Ok(ConnectionsApi {
            api: dialer.towards(config.api.clone()),
            token_dialer: dialer.towards(config.token_url.clone()),
            token_path: config.token_url.path_url(""),
            credentials: Credentials::load(&config.credentials_file)?,
        })
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        expected: u16,
    ) -> Result<bytes::Bytes, ApiError> {
        let token = self
            .token_dialer
            .fetch_token_at(&self.token_path, &self.credentials)
            .await?;
        let answer = self
            .api
            .send_json(method, path, Some(&token.value), body)
            .await?;
        if answer.status != expected {
            return Err(ApiError::Refused {
                status: answer.status,
                message: answer.message(),
            });
        }
        Ok(answer.body)
    }

    /// Opens a connection session to `device` with the Protocol Application `application`.
    pub async fn open(&self, device: &str, application: &str) -> Result<Connection, ApiError> {
        let body = serde_json::json!({ "device": device, "application": application });
        let answer = self
            .call(http::Method::POST, CONNECTIONS_PATH, Some(&body), 201)
            .await?;
        serde_json::from_slice(&answer).map_err(|e| ApiError::BadAnswer(e.to_string()))
    }

    /// The caller's open connection sessions.
    pub async fn list(&self) -> Result<Vec<Connection>, ApiError> {
        let answer = self
            .call(http::Method::GET, CONNECTIONS_PATH, None, 200)
            .await?;
        serde_json::from_slice(&answer).map_err(|e| ApiError::BadAnswer(e.to_string()))
    }

    /// Ends a connection session.
    pub async fn end(&self, id: &str) -> Result<Connection, ApiError> {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ApiError::BadId);
        }
        let path = format!("{CONNECTIONS_PATH}/{id}");
        let answer = self.call(http::Method::DELETE, &path, None, 200).await?;
        serde_json::from_slice(&answer).map_err(|e| ApiError::BadAnswer(e.to_string()))
    }
}

/// How a user reaches a listener of an application made from `template` on `address` (the
/// agent's `listen_address`): the command or URL for the protocols that have one
/// (`ssh -p 2222 localhost`), else `localhost:5020 → plc:502`. An answer without a template
/// counts port 22 as SSH. Loopback (and "every address") is shown as `localhost`.
pub fn how_to_reach(address: IpAddr, template: &str, listener: &ConnectionListener) -> String {
    let port = listener.local_port;
    let (bare, host) = match address {
        a if a.is_loopback() || a.is_unspecified() => {
            ("localhost".to_string(), "localhost".to_string())
        }
        IpAddr::V4(v4) => (v4.to_string(), v4.to_string()),
        IpAddr::V6(v6) => (v6.to_string(), format!("[{v6}]")),
    };
    match template {
        "ssh" => format!("ssh -p {port} {bare}"),
        "http" => format!("http://{host}:{port}/"),
        "https" => format!("https://{host}:{port}/"),
        "vnc" => format!("vncviewer {host}::{port}"),
        "rdp" => format!("xfreerdp /v:{host}:{port}"),
        "" if listener.target_port == 22 => format!("ssh -p {port} {bare}"),
        _ => format!(
            "{host}:{port} → {}:{}",
            listener.target_host, listener.target_port
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_connection_reads_and_prints() {
        let c: Connection = serde_json::from_str(
            r#"{"tenant":"abc","id":"c-1","user_name":"u","device":"press-7","application":"ssh-press",
                "started_ms":1,"ends_ms":2,"ended_ms":null,"end_reason":null,"bytes_up":0,"bytes_down":0,
                "listeners":[{"side":"service","local_port":2222,"target_host":"127.0.0.1","target_port":22},
                             {"side":"service","local_port":5020,"target_host":"plc","target_port":502}]}"#,
        )
        .unwrap();
        assert_eq!(
            how_to_reach(LOOPBACK, &c.template, &c.listeners[0]),
            "ssh -p 2222 localhost"
        );
        assert_eq!(
            how_to_reach(LOOPBACK, &c.template, &c.listeners[1]),
            "localhost:5020 → plc:502"
        );
        assert_eq!(
            how_to_reach(LOOPBACK, "ssh", &c.listeners[1]),
            "ssh -p 5020 localhost"
        );
        assert_eq!(
            how_to_reach(LOOPBACK, "http", &c.listeners[1]),
            "http://localhost:5020/"
        );
        let lan: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            how_to_reach(lan, "ssh", &c.listeners[0]),
            "ssh -p 2222 10.0.0.5"
        );
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(
            how_to_reach(v6, "tcp", &c.listeners[1]),
            "[fd00::5]:5020 → plc:502"
        );
    }
}
