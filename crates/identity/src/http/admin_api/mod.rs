//! The identity admin API (`/api/identity/v1/`; the gateway strips that prefix): a tenant
//! administrator lists, adds, changes and removes the tenant's users and OAuth clients.
//! Only a tenant `admin` may use it, always in their own tenant. The handlers do not know
//! the gateway: whoever serves the router inserts an [`AdminCaller`] request extension.
//! Errors have the gateway's shape (`{status, error, message}`).

mod clients;
mod error;
mod users;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::Router;

use crate::users::Role;
use crate::Identity;
use error::AdminError;

/// Who is calling, as the gateway verified it. `role` is the identity service's role name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCaller {
    pub tenant: String,
    pub subject: String,
    pub role: String,
}

/// The routes: `GET|POST /users`, `PUT|DELETE /users/{name}`, `GET|POST /clients`,
/// `DELETE /clients/{client_id}`.
pub fn admin_api(identity: Identity) -> Router {
    Router::new()
        .route("/users", get(users::list).post(users::add))
        .route("/users/{name}", put(users::change).delete(users::remove))
        .route("/clients", get(clients::list).post(clients::add))
        .route(
            "/clients/{client_id}",
            axum::routing::delete(clients::remove),
        )
        .fallback(not_found)
        .with_state(identity)
}

async fn not_found() -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "No such resource")
}

/// A caller who is a tenant administrator. No caller: 401; any other role (the platform
/// operator included): 403.
pub(crate) struct Admin {
    pub tenant: String,
    pub subject: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Admin, AdminError> {
        let caller = parts.extensions.get::<AdminCaller>().ok_or_else(|| {
            AdminError::new(
                StatusCode::UNAUTHORIZED,
                "Sign in to manage users and clients",
            )
        })?;
        if caller.role != Role::Admin.as_str() {
            return Err(AdminError::new(
                StatusCode::FORBIDDEN,
                "Only tenant administrators manage users and clients",
            ));
        }
        Ok(Admin {
            tenant: caller.tenant.clone(),
            subject: caller.subject.clone(),
        })
    }
}
