//! What the Remote Services API hears from and tells the live relay inside `portico serve`:
//! changes go to the control hub; which endpoints are online comes from the relay's
//! directory of tunnels.

use portico_relay::api::{LiveEvents, Online};
use portico_relay::live::{ControlHub, Relay};
use std::sync::Arc;

pub struct LiveRelay {
    pub hub: ControlHub,
    pub relay: Arc<Relay>,
}

impl LiveEvents for LiveRelay {
    fn sessions_changed(&self, tenant: &str) {
        self.hub.sessions_changed(tenant);
    }

    fn endpoint_revoked(&self, tenant: &str, endpoint: &str) {
        self.hub.endpoint_revoked(tenant, endpoint);
    }

    fn online(&self, tenant: &str) -> Vec<Online> {
        self.relay
            .directory()
            .online(tenant)
            .into_iter()
            .map(|presence| Online {
                endpoint: presence.key.name,
                since_ms: presence.since_ms,
            })
            .collect()
    }
}
