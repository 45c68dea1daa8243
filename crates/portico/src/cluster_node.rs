//! `portico serve` as one node of a cluster (`[cluster]`, OPS-2): the relay's leases and
//! links ([`portico_relay::live::cluster`]), the link listener, and the control hub
//! following the other nodes' `rs_sessions` notices. Without `[cluster]` none of this runs.

use anyhow::{Context, Result};
use portico_relay::live::link::{self, LinkSecret};
use portico_relay::live::{Cluster, ClusterOptions, ControlHub, LiveOptions, Relay};
use portico_store::Store;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ClusterConfig;

/// A node's cluster part before it runs: the directory's leases and the bound link listener.
pub struct Node {
    pub cluster: Arc<Cluster>,
    listener: TcpListener,
}

/// Clears what a previous run of this node left; `listener` is the bound link listener.
pub async fn prepare(
    store: &Store,
    config: &ClusterConfig,
    live: &LiveOptions,
    listener: TcpListener,
) -> Result<Node> {
    let options = ClusterOptions {
        node: config.node.clone(),
        link_address: config.link_advertise.clone(),
        secret: config.secret.clone(),
    };
    let cluster = Arc::new(Cluster::new(
        store.clone(),
        options,
        live.clock.clone(),
        live.tunnel.clone(),
    ));
    cluster
        .start()
        .await
        .context("cannot clear this node's old endpoint leases")?;
    tracing::info!(node = %config.node, link = %config.link_listen, "cluster node");
    Ok(Node { cluster, listener })
}

impl Node {
    /// Runs the lease renewals, the link listener and the notices' follower until `shutdown`.
    pub fn run(
        self,
        tasks: &TaskTracker,
        relay: &Arc<Relay>,
        hub: &ControlHub,
        live: &LiveOptions,
        shutdown: &CancellationToken,
    ) {
        tasks.spawn(
            self.cluster
                .clone()
                .run(relay.directory().clone(), shutdown.clone()),
        );
        let secret: LinkSecret = self.cluster.secret().clone();
        tasks.spawn(link::serve(
            self.listener,
            relay.directory().clone(),
            secret,
            live.tunnel.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(hub.clone().follow_notices(shutdown.clone()));
    }
}
