//! Why a transport refuses a request, and the HTTP answer each reason gets: a JSON body
//! `{"error": <code>, "message": <what was wrong>}`, never cached.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;
use std::time::Duration;

use crate::bayeux::BadMessage;

pub(super) const JSON_TYPE: &str = "application/json;charset=UTF-8";

#[derive(Debug, thiserror::Error)]
pub(super) enum TransportError {
    #[error("the request is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("cannot read the request body: {0}")]
    Unreadable(String),
    #[error("the request carries no Bayeux messages: {0}")]
    Empty(&'static str),
    #[error("the form body is not valid UTF-8 form encoding")]
    BadForm,
    #[error("the request is not Bayeux: {0}")]
    NotBayeux(#[from] BadMessage),
    #[error("the jsonp callback name must be a JavaScript identifier (letters, digits, `_`, `$`, dot-separated), at most {max} characters")]
    BadCallback { max: usize },
    #[error("a GET here is either a WebSocket upgrade or callback-polling (`?message=<json>&jsonp=<callback>`)")]
    NotAPoll,
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
    #[error("the notification engine did not answer within {} s", .0.as_secs())]
    EngineTimeout(Duration),
}

impl TransportError {
    fn status(&self) -> StatusCode {
        match self {
            TransportError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            TransportError::EngineTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            TransportError::Unreadable(_)
            | TransportError::Empty(_)
            | TransportError::BadForm
            | TransportError::NotBayeux(_)
            | TransportError::BadCallback { .. }
            | TransportError::NotAPoll
            | TransportError::BadHandshake(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            TransportError::TooLarge { .. } => "notification/requestTooLarge",
            TransportError::EngineTimeout(_) => "notification/unavailable",
            TransportError::BadCallback { .. } => "notification/invalidCallback",
            TransportError::BadHandshake(_) => "notification/invalidHandshake",
            TransportError::Unreadable(_)
            | TransportError::Empty(_)
            | TransportError::BadForm
            | TransportError::NotBayeux(_)
            | TransportError::NotAPoll => "notification/invalidRequest",
        }
    }
}

impl IntoResponse for TransportError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "notification request failed");
        } else {
            tracing::debug!(error = %self, "notification request refused");
        }
        let body = json!({"error": self.code(), "message": self.to_string()});
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}
