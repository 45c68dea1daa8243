//! Opening a stream on an endpoint's tunnel wherever it is: on this node's directory, or,
//! in a cluster, over the link to the node whose lease says it holds the tunnel.

use std::sync::Arc;

use portico_store::StoreError;
use portico_tunnel::{OpenStreamError, TunnelStream};

use super::cluster::Cluster;
use super::directory::Directory;
use super::link::{link_target, LinkError};

#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error("endpoint {0} is not online")]
    Offline(String),
    #[error("could not open the stream on {endpoint}'s tunnel: {error}")]
    Open {
        endpoint: String,
        error: OpenStreamError,
    },
    #[error("could not reach {endpoint} on another node: {error}")]
    Link { endpoint: String, error: LinkError },
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// Where streams to endpoints are opened.
pub struct Reach {
    directory: Arc<Directory>,
    cluster: Option<Arc<Cluster>>,
}

impl Reach {
    pub fn new(directory: Arc<Directory>, cluster: Option<Arc<Cluster>>) -> Reach {
        Reach { directory, cluster }
    }

    /// Opens a stream with `target` (`host:port`) on the endpoint's tunnel.
    pub async fn open(
        &self,
        tenant: &str,
        endpoint: &str,
        target: &str,
    ) -> Result<TunnelStream, ReachError> {
        Ok(self.open_placed(tenant, endpoint, target).await?.0)
    }

    /// [`Reach::open`], with the connection number of the endpoint's tunnel if the stream
    /// is on this node's tunnel (`None` over a link to another node).
    pub async fn open_placed(
        &self,
        tenant: &str,
        endpoint: &str,
        target: &str,
    ) -> Result<(TunnelStream, Option<u64>), ReachError> {
        if let Some(cluster) = &self.cluster {
            if let Some(lease) = cluster.elsewhere(tenant, endpoint).await? {
                let stream = cluster
                    .links()
                    .open(&lease.link_address, &link_target(tenant, endpoint, target))
                    .await
                    .map_err(|error| ReachError::Link {
                        endpoint: endpoint.to_string(),
                        error,
                    })?;
                return Ok((stream, None));
            }
        }
        let (tunnel, connection) = self
            .directory
            .tunnel_here(tenant, endpoint)
            .ok_or_else(|| ReachError::Offline(endpoint.to_string()))?;
        let stream = tunnel.open(target).map_err(|error| ReachError::Open {
            endpoint: endpoint.to_string(),
            error,
        })?;
        Ok((stream, Some(connection)))
    }
}
