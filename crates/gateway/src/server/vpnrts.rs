//! Routing on the Remote Services hosts (GW-6). `connectivity.{region}.vpnrts.{domain}`
//! serves the identity core paths endpoints need (`/uaa/`, with the token endpoint, and
//! `/.well-known/`); `wss.{region}.vpnrts.{domain}` serves the relay's two WebSockets
//! `/ccf/` and `/mts/` (and the lanes under `/mts/lane/`, WebSocket or framed), passed with
//! their upgrade to the in-process service
//! [`RELAY_SERVICE`], which authenticates the endpoint's bearer token itself. Anything
//! else on these hosts is a clear 404 (400 for a non-WebSocket request to a socket path).

use super::{is_switch, under, Dispatch, Gateway, Routed, TargetPath};
use crate::auth::enforce::Guard;
use crate::body::Body;
use crate::error::GatewayError;
use crate::metrics::RouteClass;
use crate::routing::VpnrtsService;
use crate::table::Target;
use http::Request;
use std::sync::Arc;

/// The name of the relay among the in-process services (`portico serve` registers it).
const RELAY_SERVICE: &str = "relay";
/// The relay's WebSocket paths on the `wss` host.
const RELAY_PATHS: [&str; 2] = ["/ccf", "/mts"];
/// The identity paths on the `connectivity` host.
const CONNECTIVITY_PATHS: [&str; 2] = ["/uaa", "/.well-known"];

impl Gateway {
    pub(super) fn route_vpnrts(
        &self,
        service: VpnrtsService,
        request: &Request<Body>,
        decoded: &str,
        host_name: &str,
    ) -> Result<Routed, GatewayError> {
        let path = request.uri().path();
        let nothing_here =
            || GatewayError::not_found(format!("Nothing is served at {path} on {host_name}"));
        match service {
            VpnrtsService::Connectivity => {
                if !CONNECTIVITY_PATHS.iter().any(|p| under(decoded, p)) {
                    return Err(nothing_here());
                }
                match self.identity_core(decoded, None, None) {
                    Some(routed) => Ok(routed),
                    None if under(decoded, "/.well-known") => Ok(Routed::Core),
                    None => Err(nothing_here()),
                }
            }
            VpnrtsService::Wss => {
                if under(decoded, "/.well-known") {
                    return Ok(Routed::Core);
                }
                if !RELAY_PATHS.iter().any(|p| under(decoded, p)) {
                    return Err(nothing_here());
                }
                if !self.inner.services.contains_key(RELAY_SERVICE) {
                    return Err(nothing_here());
                }
                // WebSocket, or a framed lane's own upgrade: the relay checks which.
                if !is_switch(request.headers()) {
                    return Err(GatewayError::bad_request(format!(
                        "{path} on {host_name} is a WebSocket endpoint; send a WebSocket upgrade"
                    )));
                }
                Ok(Routed::Forward(Dispatch {
                    class: RouteClass::Core,
                    target: Arc::new(Target::InProcess(RELAY_SERVICE.to_string())),
                    path: TargetPath::AsSent,
                    tenant: None,
                    upgrade: true,
                    web: None,
                    // The relay checks the endpoint's bearer token itself.
                    guard: Guard::IdentityCore,
                }))
            }
        }
    }
}
