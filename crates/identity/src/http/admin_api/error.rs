//! Errors in the gateway's error shape, and a JSON body extractor whose rejections use it.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portico_store::StoreError;
use serde_json::json;

use crate::IdentityError;

#[derive(Debug)]
pub struct AdminError {
    pub status: StatusCode,
    pub message: String,
}

pub type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> AdminError {
        AdminError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AdminError {
        AdminError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn conflict(message: impl Into<String>) -> AdminError {
        AdminError::new(StatusCode::CONFLICT, message)
    }

    pub fn not_found(kind: &str, name: &str) -> AdminError {
        AdminError::new(
            StatusCode::NOT_FOUND,
            format!("{kind} \"{name}\" does not exist"),
        )
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        // Keys are `tenant/name` (client ids stand alone); the caller knows their tenant.
        let name = |key: &str| key.split_once('/').map_or(key, |(_, n)| n).to_string();
        match &e {
            StoreError::NotFound { kind, key } => AdminError::not_found(kind, &name(key)),
            StoreError::Exists { kind, key } => {
                AdminError::conflict(format!("{kind} \"{}\" already exists", name(key)))
            }
            StoreError::Invalid(message) => AdminError::bad_request(message.clone()),
            _ => {
                tracing::error!(error = %e, "identity admin API: store failure");
                AdminError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The store is unavailable; try again",
                )
            }
        }
    }
}

impl From<IdentityError> for AdminError {
    fn from(e: IdentityError) -> AdminError {
        match e {
            IdentityError::Store(e) => e.into(),
            IdentityError::Invalid(message) => AdminError::bad_request(message),
            IdentityError::Internal(message) => {
                tracing::error!(error = %message, "identity admin API: internal failure");
                AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

/// A JSON request body whose rejections (bad JSON, unknown fields, wrong content type)
/// are answered in the error shape. A body that is JSON but not of the call's shape is
/// invalid input like any other: 400, not axum's 422.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AdminError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => {
                let status = match rejection.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    other => other,
                };
                Err(AdminError::new(status, rejection.body_text()))
            }
        }
    }
}
