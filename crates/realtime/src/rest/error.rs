//! Errors as the Cumulocity device API sends them: `{"error": "<area>/<short>",
//! "message": ..., "info": ...}` with the matching HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portico_store::StoreError;
use serde_json::json;

use crate::accounts::AuthError;

/// Where a client reads about the error shapes.
const INFO: &str = "Portico device API: see docs/device-api.md, section Errors";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The API area: `inventory`, `identity`, `measurement`, `event`, `alarm`,
    /// `devicecontrol` or `security`.
    pub area: &'static str,
    pub message: String,
    retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, area: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            area,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(area: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, area, message)
    }

    pub fn not_found(area: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, area, message)
    }

    pub fn forbidden(area: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, area, message)
    }

    pub fn conflict(area: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, area, message)
    }

    pub fn unprocessable(area: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, area, message)
    }

    /// A store failure: the details go to the log, the client learns only that the
    /// database failed.
    pub fn store(area: &'static str, e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { kind, key } => {
                ApiError::not_found(area, format!("{kind} {key} not found"))
            }
            StoreError::Exists { kind, key } => {
                ApiError::conflict(area, format!("{kind} {key} already exists"))
            }
            other => {
                tracing::error!("device API ({area}): {other}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    area,
                    "the database cannot serve the request now; retry",
                )
            }
        }
    }

    pub fn auth(e: AuthError) -> ApiError {
        let (status, retry) = match &e {
            AuthError::Missing | AuthError::Invalid(_) => (StatusCode::UNAUTHORIZED, None),
            AuthError::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                Some(retry_after.as_secs().max(1)),
            ),
            AuthError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
        };
        ApiError {
            retry_after_s: retry,
            ..ApiError::new(status, "security", e.to_string())
        }
    }

    /// `<area>/<short>`, the short name being the status's reason phrase (Cumulocity's
    /// `inventory/Not Found`, `security/Unauthorized`…), `validationError` for 400 and 422.
    fn code(&self) -> String {
        let short = match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "validationError",
            other => other.canonical_reason().unwrap_or("Error"),
        };
        format!("{}/{short}", self.area)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code(), "message": self.message, "info": INFO});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/vnd.com.nsn.cumulocity.error+json;charset=UTF-8;ver=0.9",
            ),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Portico\""),
            );
        }
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
