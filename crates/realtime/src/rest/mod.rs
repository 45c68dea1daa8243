//! The device REST API (DC-1), following Cumulocity's closely enough that its device
//! clients work unchanged: inventory, identity, measurements, events, alarms,
//! operations and the device bootstrap. See `docs/device-api.md` for the paths, the
//! permissions and the decisions made where Cumulocity's documentation is silent.
//!
//! Every route authenticates the caller and keeps to its tenant; every write is stored,
//! then published through [`Notify`], then answered.

mod access;
mod alarms;
mod bootstrap;
mod data;
mod error;
mod identity;
mod inventory;
mod operations;
mod request;
mod respond;
mod time;

pub use error::ApiError;
pub use request::{DEFAULT_PAGE_SIZE, MAX_BODY, MAX_PAGE_SIZE};

use std::sync::Arc;

use axum::routing::{get, post, MethodRouter};
use axum::Router;
use portico_store::Store;

use crate::accounts::Accounts;
use crate::change::{Action, Change, Kind, Notify};

/// What the handlers share.
pub(crate) struct RestState {
    pub store: Store,
    pub accounts: Arc<dyn Accounts>,
    pub notify: Arc<dyn Notify>,
}

impl RestState {
    /// Tells the notification side about a stored change before the handler answers.
    pub async fn publish(
        &self,
        tenant: &str,
        kind: Kind,
        action: Action,
        source: i64,
        data: &serde_json::Value,
    ) {
        self.notify
            .publish(Change {
                tenant: tenant.to_string(),
                kind,
                action,
                source: source.to_string(),
                data: data.clone(),
            })
            .await;
    }
}

/// The device API at the root: `/inventory/**`, `/identity/**`, `/measurement/**`,
/// `/event/**`, `/alarm/**`, `/devicecontrol/**`.
pub fn router(store: Store, accounts: Arc<dyn Accounts>, notify: Arc<dyn Notify>) -> Router {
    let state = Arc::new(RestState {
        store,
        accounts,
        notify,
    });
    let routes: Vec<(&str, MethodRouter<Arc<RestState>>)> = vec![
        (
            "/inventory/managedObjects",
            get(inventory::list).post(inventory::create),
        ),
        (
            "/inventory/managedObjects/{id}",
            get(inventory::get_one).put(inventory::update),
        ),
        (
            "/identity/externalIds/{id_type}/{external_id}",
            get(identity::resolve),
        ),
        (
            "/identity/globalIds/{id}/externalIds",
            get(identity::list).post(identity::create),
        ),
        (
            "/measurement/measurements",
            get(data::list_measurements).post(data::create_measurements),
        ),
        ("/measurement/measurements/{id}", get(data::get_measurement)),
        (
            "/event/events",
            get(data::list_events).post(data::create_event),
        ),
        ("/event/events/{id}", get(data::get_event)),
        ("/alarm/alarms", get(alarms::list).post(alarms::create)),
        (
            "/alarm/alarms/{id}",
            get(alarms::get_one).put(alarms::update),
        ),
        (
            "/devicecontrol/operations",
            get(operations::list).post(operations::create),
        ),
        (
            "/devicecontrol/operations/{id}",
            get(operations::get_one).put(operations::update),
        ),
        (
            "/devicecontrol/newDeviceRequests",
            get(bootstrap::list).post(bootstrap::create),
        ),
        (
            "/devicecontrol/newDeviceRequests/{id}",
            get(bootstrap::get_one)
                .put(bootstrap::update)
                .delete(bootstrap::remove),
        ),
        (
            "/devicecontrol/deviceCredentials",
            post(bootstrap::credentials),
        ),
    ];
    let mut router = Router::new();
    for (path, methods) in routes {
        // Some clients add a trailing slash (c8y-api posts alarms to `/alarm/alarms/`).
        router = router
            .route(path, methods.clone())
            .route(&format!("{path}/"), methods);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A known path with a method it does not serve (axum adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        request::area_of(uri.path()),
        format!("{method} is not supported on {}", uri.path()),
    )
}

/// An unknown path under the device API roots.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        request::area_of(uri.path()),
        format!("no device API resource at {}", uri.path()),
    )
}
