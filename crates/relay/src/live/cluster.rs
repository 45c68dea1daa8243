//! A relay that is one node of a cluster (OPS-2): the endpoint directory's leases in the
//! database say which node holds which endpoint's tunnel, and streams to an endpoint held
//! elsewhere cross a node-to-node [`link`](super::link).
//!
//! The node writes a lease when a tunnel attaches (taking over any other node's), removes
//! it when the tunnel ends, and every [`RENEW_EVERY`] renews its leases until
//! [`LEASE_TTL`] from then: a node that dies loses its endpoints within that time. The same
//! round reconciles the leases with the local tunnels (a lease write that failed is made
//! again, a stale one removed, a local tunnel whose endpoint reconnected through another
//! node is closed with `GoAway(replaced)`) and keeps a copy of the whole cluster's
//! directory for the API's `online` flags.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portico_store::{EndpointLease, Store, StoreError};
use portico_tunnel::{GoAwayReason, TunnelConfig};
use tokio_util::sync::CancellationToken;

use super::directory::{Directory, EndpointKey, Presence};
use super::link::{LinkPeers, LinkSecret};
use crate::api::Clock;

/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a node renews its leases and rereads the cluster's directory.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);

/// What a node of a cluster is.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// This node's name, unique in the cluster.
    pub node: String,
    /// Where other nodes reach this node's link listener (`host:port`).
    pub link_address: String,
    /// The secret all nodes share.
    pub secret: Vec<u8>,
}

/// This node's part in the cluster's directory, and its links to the others.
pub struct Cluster {
    store: Store,
    node: String,
    link_address: String,
    secret: LinkSecret,
    links: LinkPeers,
    clock: Clock,
    /// The cluster's unexpired leases at the last round, by tenant.
    known: Mutex<HashMap<String, Vec<EndpointLease>>>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Cluster {
    pub fn new(
        store: Store,
        options: ClusterOptions,
        clock: Clock,
        tunnel: TunnelConfig,
    ) -> Cluster {
        let secret = LinkSecret::new(&options.secret);
        Cluster {
            store,
            node: options.node,
            link_address: options.link_address,
            links: LinkPeers::new(secret.clone(), tunnel),
            secret,
            clock,
            known: Mutex::new(HashMap::new()),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The key the link listener checks peers with.
    pub fn secret(&self) -> &LinkSecret {
        &self.secret
    }

    pub fn links(&self) -> &LinkPeers {
        &self.links
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Forgets leases a previous run of this node left (its tunnels are gone with it).
    pub async fn start(&self) -> Result<(), StoreError> {
        let removed = self.store.remove_node_leases(&self.node).await?;
        if removed > 0 {
            tracing::info!(node = %self.node, removed, "leases of this node's previous run removed");
        }
        Ok(())
    }

    fn lease_of(&self, presence: &Presence) -> EndpointLease {
        EndpointLease {
            tenant: presence.key.tenant.clone(),
            endpoint: presence.key.name.clone(),
            node: self.node.clone(),
            link_address: self.link_address.clone(),
            connection: i64::try_from(presence.connection).unwrap_or(i64::MAX),
            since_ms: presence.since_ms,
            expires_ms: self.now() + millis(LEASE_TTL),
        }
    }

    /// Takes the endpoint's lease for a tunnel that attached here.
    pub async fn claim(&self, presence: &Presence) {
        if let Err(error) = self
            .store
            .put_endpoint_lease(&self.lease_of(presence))
            .await
        {
            // The next round writes it again.
            tracing::warn!(endpoint = %presence.key.name, %error, "could not write an endpoint lease");
        }
    }

    /// Gives the lease up when the tunnel ended (unless a newer tunnel holds it).
    pub async fn release(&self, key: &EndpointKey, connection: u64) {
        let connection = i64::try_from(connection).unwrap_or(i64::MAX);
        let removed = self
            .store
            .remove_endpoint_lease(&key.tenant, &key.name, &self.node, connection)
            .await;
        if let Err(error) = removed {
            tracing::warn!(endpoint = %key.name, %error, "could not remove an endpoint lease; it lapses");
        }
    }

    /// The node holding the endpoint's tunnel if it is another one: the lease to follow.
    pub async fn elsewhere(
        &self,
        tenant: &str,
        endpoint: &str,
    ) -> Result<Option<EndpointLease>, StoreError> {
        let lease = self
            .store
            .endpoint_lease(tenant, endpoint, self.now())
            .await?;
        Ok(lease.filter(|l| l.node != self.node))
    }

    /// The tenant's endpoints online on the other nodes, as of the last round.
    pub fn online_elsewhere(&self, tenant: &str) -> Vec<EndpointLease> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(tenant)
            .map(|leases| {
                leases
                    .iter()
                    .filter(|l| l.node != self.node)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Renews and reconciles every [`RENEW_EVERY`] until `shutdown`; then gives up this
    /// node's leases (its tunnels were closed).
    pub async fn run(self: Arc<Self>, directory: Arc<Directory>, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.round(&directory).await {
                tracing::warn!(%error, "could not renew the endpoint leases");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(RENEW_EVERY) => {}
            }
        }
        if let Err(error) = self.store.remove_node_leases(&self.node).await {
            tracing::warn!(%error, "could not remove this node's endpoint leases; they lapse");
        }
    }

    /// One renewal round.
    pub async fn round(&self, directory: &Directory) -> Result<(), StoreError> {
        let now = self.now();
        self.store
            .renew_endpoint_leases(&self.node, now + millis(LEASE_TTL))
            .await?;
        let leases = self.store.all_endpoint_leases(now).await?;
        let local = directory.all();
        let held: HashMap<(&str, &str), &EndpointLease> = leases
            .iter()
            .map(|l| ((l.tenant.as_str(), l.endpoint.as_str()), l))
            .collect();
        let mut current: HashSet<(String, String, i64)> = HashSet::new();
        for presence in &local {
            let (tenant, name) = (presence.key.tenant.as_str(), presence.key.name.as_str());
            let connection = i64::try_from(presence.connection).unwrap_or(i64::MAX);
            current.insert((tenant.to_string(), name.to_string(), connection));
            match held.get(&(tenant, name)) {
                None => self.claim(presence).await,
                Some(lease) if lease.node != self.node && lease.since_ms >= presence.since_ms => {
                    tracing::info!(tenant, endpoint = name, node = %lease.node, "endpoint reconnected through another node; closing its tunnel here");
                    directory.close_connection(
                        &presence.key,
                        presence.connection,
                        GoAwayReason::Replaced,
                    );
                }
                Some(_) => {}
            }
        }
        for lease in leases.iter().filter(|l| l.node == self.node) {
            let key = (
                lease.tenant.clone(),
                lease.endpoint.clone(),
                lease.connection,
            );
            if !current.contains(&key) {
                self.store
                    .remove_endpoint_lease(
                        &lease.tenant,
                        &lease.endpoint,
                        &self.node,
                        lease.connection,
                    )
                    .await?;
            }
        }
        let mut by_tenant: HashMap<String, Vec<EndpointLease>> = HashMap::new();
        for lease in leases {
            by_tenant
                .entry(lease.tenant.clone())
                .or_default()
                .push(lease);
        }
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = by_tenant;
        Ok(())
    }
}
