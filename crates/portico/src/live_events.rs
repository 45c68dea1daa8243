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

#[cfg(test)]
mod tests {
    use super::*;
    use portico_relay::api::system_clock;
    use portico_relay::live::{Cluster, ClusterOptions, ControlOptions, LiveOptions};
    use portico_store::EndpointLease;
    use portico_store::{DeviceRecord, EndpointBinding, EndpointRecord, EndpointState, SiteRecord};
    use portico_tunnel::{memory_pair, Role, Tunnel, TunnelConfig};

    async fn endpoint(store: &Store, tenant: &str, name: &str) {
        store
            .add_endpoint(&EndpointRecord {
                tenant: tenant.into(),
                name: name.into(),
                binding: EndpointBinding::Device("press-7".into()),
                state: EndpointState::Registered,
                code_hash: None,
                code_expires_ms: None,
                client_id: Some(format!("{tenant}-{name}")),
                created_ms: 0,
                registered_ms: Some(0),
                revoked_ms: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_clustered_node_lists_its_tunnels_and_the_other_nodes_leases_of_the_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        for tenant in ["acme", "other"] {
            let site = SiteRecord {
                tenant: tenant.into(),
                name: "hq".into(),
                parent: None,
                created_ms: 0,
            };
            store.add_site(&site).await.unwrap();
            let device = DeviceRecord {
                tenant: tenant.into(),
                name: "press-7".into(),
                site: "hq".into(),
                description: String::new(),
                created_ms: 0,
            };
            store.add_device(&device).await.unwrap();
        }
        endpoint(&store, "acme", "ep-here").await;
        let options = ClusterOptions {
            node: "node-1".into(),
            link_address: "127.0.0.1:1".into(),
            secret: vec![7; 32],
        };
        let clock = system_clock();
        let cluster = Arc::new(Cluster::new(
            store.clone(),
            options,
            clock.clone(),
            TunnelConfig::default(),
        ));
        let relay = Arc::new(Relay::clustered(
            store.clone(),
            LiveOptions::default(),
            cluster.clone(),
        ));
        let hub = ControlHub::new(store.clone(), relay.clone(), ControlOptions::default());
        let (near, far) = memory_pair(16);
        relay
            .attach("acme", "ep-here", "192.0.2.1:1", far, false)
            .await
            .unwrap();
        let _agent = Tunnel::new(near, Role::Device, TunnelConfig::default());
        for (tenant, name, node) in [
            ("acme", "ep-there", "node-2"),
            ("other", "ep-elsewhere", "node-2"),
        ] {
            let lease = EndpointLease {
                tenant: tenant.into(),
                endpoint: name.into(),
                node: node.into(),
                link_address: "127.0.0.1:2".into(),
                connection: 1,
                since_ms: 1_000,
                expires_ms: clock() + 60_000,
            };
            store.put_endpoint_lease(&lease).await.unwrap();
        }
        cluster.round(relay.directory()).await.unwrap();
        let live = LiveRelay {
            hub,
            relay,
            cluster_notices: Some(store.clone()),
        };
        let online: Vec<String> = live
            .online("acme")
            .into_iter()
            .map(|o| o.endpoint)
            .collect();
        assert_eq!(online, ["ep-here", "ep-there"]);
        let there = live
            .online("acme")
            .into_iter()
            .find(|o| o.endpoint == "ep-there");
        assert_eq!(there.unwrap().since_ms, 1_000);
    }
}
