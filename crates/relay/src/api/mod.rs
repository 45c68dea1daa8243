//! The Remote Services REST API (`/api/remoteservices/v1/`; the gateway strips that
//! prefix, as for the registry API): sites, devices, endpoints, templates, applications,
//! assignments, members, connections and audit, for the caller the request extension
//! [`Caller`] names. What a caller may do is decided by [`crate::rules`].

mod access;
mod applications;
mod connections;
pub mod credentials;
mod credentials_rotation;
mod endpoints;
pub mod error;
mod export;
mod organisation;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use portico_store::Store;

pub use credentials::{CredentialIssuer, Credentials, IssueError, IssueFuture};
use error::ApiError;

const OPENAPI: &str = include_str!("../../openapi/remoteservices.json");

/// Who is calling: the binary fills it in from the gateway's principal and inserts it as
/// a request extension. `role` is the identity service's role name (`admin`,
/// `site-owner`, `user`, `operator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub subject: String,
    pub role: String,
}

/// A caller authenticated with client credentials (an OAuth client of the tenant, not a
/// user): the binary inserts it, besides [`Caller`], for every principal without a role.
/// The credential rotation handlers find the endpoint that holds the client from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCaller {
    pub tenant: String,
    pub client_id: String,
}

/// The current time in unix milliseconds. Tests move it by hand.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// What the API tells the live relay (the control hub) as soon as it changed the store:
/// connection sessions opened or ended, endpoints revoked. Without a live side (the API
/// alone, in tests) nothing is told.
pub trait LiveEvents: Send + Sync + 'static {
    /// Sessions of the tenant opened or ended (by a user, an unassignment, a revocation
    /// or their timeout).
    fn sessions_changed(&self, tenant: &str);
    /// An endpoint was revoked: its tunnel and control channel are cut at once.
    fn endpoint_revoked(&self, tenant: &str, endpoint: &str);
    /// The tenant's endpoints connected to the relay now. Without a live side, none.
    fn online(&self, tenant: &str) -> Vec<Online> {
        let _ = tenant;
        Vec::new()
    }
}

/// An endpoint connected to the relay, and since when (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    pub endpoint: String,
    pub since_ms: i64,
}

/// Settings of the API.
#[derive(Clone)]
pub struct ApiOptions {
    pub clock: Clock,
    /// How long a registration code can be used.
    pub registration_code_lifetime: Duration,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            clock: system_clock(),
            registration_code_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Clone)]
pub(crate) struct ApiState {
    pub store: Store,
    pub issuer: Arc<dyn CredentialIssuer>,
    pub options: ApiOptions,
    /// The live relay to tell about changes, if this process runs one.
    pub live: Option<Arc<dyn LiveEvents>>,
}

impl ApiState {
    pub fn now(&self) -> i64 {
        (self.options.clock)()
    }

    /// Tells the live relay that the tenant's sessions changed.
    pub fn sessions_changed(&self, tenant: &str) {
        if let Some(live) = &self.live {
            live.sessions_changed(tenant);
        }
    }

    /// The tenant's online endpoints: name to connected-since (unix milliseconds).
    pub fn online(&self, tenant: &str) -> HashMap<String, i64> {
        self.live
            .as_ref()
            .map(|live| {
                live.online(tenant)
                    .into_iter()
                    .map(|o| (o.endpoint, o.since_ms))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tells the live relay that an endpoint was revoked.
    pub fn endpoint_revoked(&self, tenant: &str, endpoint: &str) {
        if let Some(live) = &self.live {
            live.endpoint_revoked(tenant, endpoint);
        }
    }
}

/// The API's router with the system clock.
pub fn remote_services_api(store: Store, issuer: Arc<dyn CredentialIssuer>) -> Router {
    remote_services_api_with(store, issuer, ApiOptions::default())
}

/// The API's router, mounted at its root (`/sites`, `/devices`, …).
pub fn remote_services_api_with(
    store: Store,
    issuer: Arc<dyn CredentialIssuer>,
    options: ApiOptions,
) -> Router {
    remote_services_api_live(store, issuer, options, None)
}

/// The API's router that tells `live` (the relay's control hub) about every change that
/// concerns connected endpoints.
pub fn remote_services_api_live(
    store: Store,
    issuer: Arc<dyn CredentialIssuer>,
    options: ApiOptions,
    live: Option<Arc<dyn LiveEvents>>,
) -> Router {
    let state = ApiState {
        store,
        issuer,
        options,
        live,
    };
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/register", post(endpoints::register))
        .route("/templates", get(applications::list_templates))
        .route(
            "/sites",
            get(organisation::list_sites).post(organisation::add_site),
        )
        .route(
            "/sites/{name}",
            get(organisation::show_site).delete(organisation::remove_site),
        )
        .route(
            "/devices",
            get(organisation::list_devices).post(organisation::add_device),
        )
        .route(
            "/devices/{name}",
            get(organisation::show_device).delete(organisation::remove_device),
        )
        .route(
            "/members",
            get(organisation::list_members).post(organisation::set_member),
        )
        .route(
            "/members/{site}/{user}",
            delete(organisation::remove_member),
        )
        .route(
            "/endpoints",
            get(endpoints::list_endpoints).post(endpoints::add_endpoint),
        )
        .route("/endpoints/{name}", get(endpoints::show_endpoint))
        .route("/endpoints/{name}/revoke", post(endpoints::revoke_endpoint))
        .route(
            "/endpoints/{name}/code",
            post(credentials_rotation::new_registration_code),
        )
        .route("/credentials/rotate", post(credentials_rotation::rotate))
        .route("/credentials/confirm", post(credentials_rotation::confirm))
        .route(
            "/applications",
            get(applications::list_applications).post(applications::add_application),
        )
        .route(
            "/applications/{name}",
            get(applications::show_application).delete(applications::remove_application),
        )
        .route(
            "/assignments",
            get(applications::list_assignments).post(applications::add_assignment),
        )
        .route(
            "/assignments/{device}/{application}",
            delete(applications::remove_assignment),
        )
        .route(
            "/connections",
            get(connections::list_connections).post(connections::open_connection),
        )
        .route(
            "/connections/{id}",
            get(connections::show_connection).delete(connections::end_connection),
        )
        .route("/audit", get(connections::list_audit))
        .fallback(not_found)
        .with_state(state)
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "No such resource")
}
