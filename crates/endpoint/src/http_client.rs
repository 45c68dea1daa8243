//! Small JSON requests to the backend's HTTP hosts (registration, the connections API) over
//! the same proxy and verified TLS as the tunnel, with hyper's HTTP/1.1 client.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::connect::{ConnectError, Dialer};

/// An API answer is small; far more is not the API.
pub const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("talking to {host} failed: {source}")]
    Http { host: String, source: hyper::Error },
    #[error("cannot build the request: {0}")]
    Request(String),
    #[error("reading the answer from {host} failed: {reason}")]
    Body { host: String, reason: String },
}

/// A status and body as received.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// What the backend says went wrong: its JSON `message` (else `error`), else the status.
    /// Control characters are dropped and the text is bounded: the answer is untrusted.
    pub fn message(&self) -> String {
        let json: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        let text = json.as_ref().and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
        match text {
            Some(t) => t.chars().filter(|c| !c.is_control()).take(300).collect(),
            None => format!("HTTP {}", self.status),
        }
    }
}

impl Dialer {
    /// Sends one request to this dialer's host, with a JSON body when given and a bearer
    /// token when given, and reads the whole answer (capped at [`MAX_ANSWER`]).
    pub async fn send_json(
        &self,
        method: http::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, HttpError> {
        let host = self.backend().to_string();
        let tls = self.tls_to_backend().await?;
        let (mut sender, connection) = self
            .step(
                "the API handshake",
                hyper::client::conn::http1::handshake(TokioIo::new(tls)),
            )
            .await?
            .map_err(|source| HttpError::Http {
                host: host.clone(),
                source,
            })?;
        let driver = tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(self.backend().path_url(path))
            .header(http::header::HOST, self.backend().authority())
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(json) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        // The error of a bad header would quote the token; say only what failed.
        let request = request
            .body(Full::new(bytes))
            .map_err(|_| HttpError::Request("a header or the path is not valid".into()))?;
        let exchange = async {
            let response =
                sender
                    .send_request(request)
                    .await
                    .map_err(|source| HttpError::Http {
                        host: host.clone(),
                        source,
                    })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| HttpError::Body {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok::<_, HttpError>(Answer { status, body })
        };
        let result = self.step("the API request", exchange).await?;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_message_is_read_from_the_answer() {
        let a = |status, body: &str| Answer {
            status,
            body: Bytes::from(body.to_string()),
        };
        assert_eq!(
            a(
                400,
                r#"{"error":"Bad Request","message":"the code is not valid"}"#
            )
            .message(),
            "the code is not valid"
        );
        assert_eq!(a(403, r#"{"error":"forbidden"}"#).message(), "forbidden");
        assert_eq!(a(502, "<html>").message(), "HTTP 502");
        assert_eq!(a(400, "{\"message\":\"a\\u0007b\"}").message(), "ab");
        assert!(a(201, "{}").is_success() && !a(404, "").is_success());
    }
}
