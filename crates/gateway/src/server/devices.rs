//! Routing of the device API (DC-1, DC-2): on `southgate` for devices and on `gateway`
//! for operators, the Cumulocity paths (`/inventory`, `/identity`, `/measurement`,
//! `/event`, `/alarm`, `/devicecontrol`, `/notification`) go unchanged to the in-process
//! service [`DEVICE_SERVICE`], which authenticates its callers itself (HTTP Basic
//! `tenant/user:password` as devices send it, or a bearer token). WebSocket upgrades are
//! let through on `/notification` only (Bayeux over WebSocket). In a build without the
//! service these paths are a clear 404.

use super::{is_upgrade, under, Dispatch, Gateway, Routed, TargetPath};
use crate::auth::enforce::Guard;
use crate::body::Body;
use crate::error::GatewayError;
use crate::metrics::RouteClass;
use crate::table::Target;
use http::Request;
use std::sync::Arc;

/// The name of the device API among the in-process services (`portico serve` registers it).
pub const DEVICE_SERVICE: &str = "devices";
/// The device API's path prefixes.
pub(super) const DEVICE_PATHS: [&str; 7] = [
    "/inventory",
    "/identity",
    "/measurement",
    "/event",
    "/alarm",
    "/devicecontrol",
    "/notification",
];
/// Where WebSocket upgrades are served.
const NOTIFICATION_PATH: &str = "/notification";

impl Gateway {
    /// The device API's route for `decoded`, or `None` when the path is not one of its.
    pub(super) fn route_devices(
        &self,
        request: &Request<Body>,
        decoded: &str,
    ) -> Option<Result<Routed, GatewayError>> {
        if !DEVICE_PATHS.iter().any(|p| under(decoded, p)) {
            return None;
        }
        let path = request.uri().path();
        if !self.inner.services.contains_key(DEVICE_SERVICE) {
            return Some(Err(GatewayError::not_found(format!(
                "\"{path}\" is reserved for the device API, which this build does not serve"
            ))));
        }
        let upgrade = is_upgrade(request.headers());
        if upgrade && !under(decoded, NOTIFICATION_PATH) {
            return Some(Err(GatewayError::bad_request(format!(
                "WebSocket upgrades are served on {NOTIFICATION_PATH}/… only, not on {path}"
            ))));
        }
        Some(Ok(Routed::Forward(Dispatch {
            class: RouteClass::Core,
            target: Arc::new(Target::InProcess(DEVICE_SERVICE.to_string())),
            path: TargetPath::AsSent,
            tenant: None,
            upgrade,
            web: None,
            // The device API authenticates its callers itself.
            guard: Guard::IdentityCore,
        })))
    }
}
