//! The endpoint's bearer token: a client-credentials grant at the backend's
//! `/uaa/oauth/token` (RFC 6749 §4.4), over the same proxy and verified TLS as the tunnel.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::connect::{ConnectError, Dialer};
use crate::credentials::Credentials;

/// The token endpoint's path below the backend URL.
pub const TOKEN_PATH: &str = "/uaa/oauth/token";
/// A token answer is a few hundred bytes; far more is not a token endpoint.
pub const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the backend refused the endpoint's credentials ({status}{detail})", detail = detail(.error))]
    Refused {
        status: u16,
        /// The OAuth `error` and `error_description`, when the answer carried them.
        error: Option<String>,
    },
    #[error("the token request failed ({status}{detail})", detail = detail(.error))]
    Failed { status: u16, error: Option<String> },
    #[error("the token endpoint's answer is not a token: {0}")]
    BadAnswer(String),
    #[error("talking to the token endpoint failed: {0}")]
    Http(#[from] hyper::Error),
}

fn detail(error: &Option<String>) -> String {
    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
}

/// A bearer token and how long the backend says it lasts.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub value: String,
    pub expires_in: Option<Duration>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"********")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// Reads the token endpoint's answer. Untrusted: whatever answered the request wrote it.
pub fn parse_token_answer(status: u16, body: &[u8]) -> Result<AccessToken, TokenError> {
    if !(200..300).contains(&status) {
        let error = serde_json::from_slice::<ErrorAnswer>(body).ok().map(|e| {
            let text = match e.error_description {
                Some(d) => format!("{} ({d})", e.error),
                None => e.error,
            };
            text.chars().filter(|c| !c.is_control()).take(300).collect()
        });
        return Err(match status {
            400 | 401 | 403 => TokenError::Refused { status, error },
            _ => TokenError::Failed { status, error },
        });
    }
    let answer: TokenAnswer = serde_json::from_slice(body).map_err(|e| {
        // The parser's message may quote the answer; keep it to one printable line.
        TokenError::BadAnswer(
            e.to_string()
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect(),
        )
    })?;
    if let Some(kind) = &answer.token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::BadAnswer(format!(
                "the token type is not Bearer but {:?}",
                kind.chars().take(40).collect::<String>()
            )));
        }
    }
    let usable = !answer.access_token.is_empty()
        && answer.access_token.bytes().all(|b| b.is_ascii_graphic());
    if !usable {
        return Err(TokenError::BadAnswer(
            "the access token is empty or cannot be sent in a header".into(),
        ));
    }
    Ok(AccessToken {
        value: answer.access_token,
        expires_in: answer.expires_in.map(Duration::from_secs),
    })
}

impl Dialer {
    /// Trades the endpoint's credentials for a bearer token at `{backend}/uaa/oauth/token`.
    pub async fn fetch_token(&self, credentials: &Credentials) -> Result<AccessToken, TokenError> {
        let path = self.backend().path_url(TOKEN_PATH);
        self.fetch_token_at(&path, credentials).await
    }

    /// Trades the endpoint's credentials for a bearer token at `path` on this dialer's host
    /// (a dialer made with [`Dialer::towards`] the configured `token_url`).
    pub async fn fetch_token_at(
        &self,
        path: &str,
        credentials: &Credentials,
    ) -> Result<AccessToken, TokenError> {
        let tls = self.tls_to_backend().await?;
        let (mut sender, connection) = self
            .step(
                "the token endpoint's handshake",
                hyper::client::conn::http1::handshake(TokioIo::new(tls)),
            )
            .await??;
        let driver = tokio::spawn(connection);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &credentials.client_id)
            .append_pair("client_secret", &credentials.client_secret)
            .finish();
        let request = http::Request::post(path)
            .header(http::header::HOST, self.backend().authority())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| TokenError::BadAnswer(e.to_string()))?;
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| TokenError::BadAnswer(format!("reading the answer: {e}")))?
                .to_bytes();
            parse_token_answer(status, &body)
        };
        let result = self.step("the token request", exchange).await?;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer() {
        let t = parse_token_answer(
            200,
            br#"{"access_token":"eyJ.a.b","token_type":"bearer","expires_in":3600,"scope":"x"}"#,
        )
        .unwrap();
        assert_eq!(t.value, "eyJ.a.b");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
        assert!(!format!("{t:?}").contains("eyJ"));
    }

    #[test]
    fn refusals_and_nonsense() {
        let err = parse_token_answer(
            401,
            br#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
        )
        .unwrap_err();
        assert!(matches!(err, TokenError::Refused { status: 401, .. }));
        assert_eq!(
            err.to_string(),
            "the backend refused the endpoint's credentials (401: invalid_client (client \
             authentication failed))"
        );
        let err = parse_token_answer(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(err.to_string(), "the token request failed (502)");
        for body in [
            &b"not json"[..],
            br#"{"token_type":"bearer"}"#,
            br#"{"access_token":"a","token_type":"mac"}"#,
            br#"{"access_token":"a b"}"#,
            br#"{"access_token":""}"#,
        ] {
            assert!(
                matches!(parse_token_answer(200, body), Err(TokenError::BadAnswer(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
