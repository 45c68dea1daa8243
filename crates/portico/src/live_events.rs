//! What the Remote Services API hears from and tells the live relay inside `portico serve`:
//! changes go to the control hub; which endpoints are online comes from the relay's
//! directory of tunnels.
//!
//! In a cluster a change goes to every node's hub as the notice `rs_sessions` (the hub of
//! this node hears it too), and the endpoints online on other nodes come from their
//! leases.

use portico_relay::api::{LiveEvents, Online};
use portico_relay::live::{ControlHub, Relay, RS_SESSIONS};
use portico_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct LiveRelay {
    pub hub: ControlHub,
    pub relay: Arc<Relay>,
    /// In a cluster: the store the notices go through.
    pub cluster_notices: Option<Store>,
}

impl LiveRelay {
    /// Tells every node; a notice that cannot be sent leaves the other nodes to their
    /// periodic recheck, and this node acts at once.
    fn notify(&self, store: &Store, tenant: &str) {
        let (store, hub, tenant) = (store.clone(), self.hub.clone(), tenant.to_string());
        tokio::spawn(async move {
            if let Err(error) = store.notify(RS_SESSIONS, &tenant).await {
                tracing::warn!(%tenant, %error, "could not tell the other nodes of a session change");
                hub.sync_tenant(&tenant).await;
            }
        });
    }
}

impl LiveEvents for LiveRelay {
    fn sessions_changed(&self, tenant: &str) {
        match &self.cluster_notices {
            Some(store) => self.notify(store, tenant),
            None => self.hub.sessions_changed(tenant),
        }
    }

    fn endpoint_revoked(&self, tenant: &str, endpoint: &str) {
        match &self.cluster_notices {
            Some(store) => {
                // Cut here at once; the node holding the tunnel cuts it on the notice.
                self.hub.revoke(tenant, endpoint);
                self.notify(store, tenant);
            }
            None => self.hub.endpoint_revoked(tenant, endpoint),
        }
    }

    fn online(&self, tenant: &str) -> Vec<Online> {
        let mut online: BTreeMap<String, i64> = BTreeMap::new();
        if let Some(cluster) = self.relay.cluster() {
            for lease in cluster.online_elsewhere(tenant) {
                online.insert(lease.endpoint, lease.since_ms);
            }
        }
        // This node's own tunnels are known at once (and are the newer where both are).
        for presence in self.relay.directory().online(tenant) {
            online.insert(presence.key.name, presence.since_ms);
        }
        online
            .into_iter()
            .map(|(endpoint, since_ms)| Online { endpoint, since_ms })
            .collect()
    }
}
