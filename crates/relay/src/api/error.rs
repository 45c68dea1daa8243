//! Errors in the gateway's error shape (`{status, error, message}`), and a JSON body
//! extractor whose rejections use it.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portico_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(kind: &str, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{kind} \"{name}\" does not exist"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::Invalid(_) => StatusCode::CONFLICT,
            StoreError::Exists { .. } | StoreError::Conflict { .. } => StatusCode::CONFLICT,
            StoreError::NotFound { kind, key } => {
                // Keys are `tenant/name`; the caller knows their tenant.
                let name = key.split_once('/').map_or(key.as_str(), |(_, n)| n);
                return ApiError::not_found(kind, name);
            }
            _ => {
                tracing::error!(error = %e, "remote services API: store failure");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The store is unavailable; try again",
                );
            }
        };
        let message = match &e {
            StoreError::Exists { kind, key } => {
                let name = key.split_once('/').map_or(key.as_str(), |(_, n)| n);
                format!("{kind} \"{name}\" already exists")
            }
            _ => e.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body whose rejections (bad JSON, unknown fields, wrong content type)
/// are answered in the error shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}
