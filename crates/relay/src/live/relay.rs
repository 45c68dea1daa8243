//! Attaching an endpoint's tunnel to the relay. The transport layer (the WebSocket
//! upgrade on `/mts/`) authenticates the endpoint from its bearer token and hands the
//! relay the tenant, the endpoint name, the peer's address and the message transport; the
//! relay checks the endpoint is registered, runs the tunnel, lists it in the directory
//! (replacing an older tunnel of the same endpoint) and joins every stream it opens.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::{Sink, Stream};
use portico_store::{EndpointState, Store, StoreError};
use portico_tunnel::lane::{self, BoxLane, LaneUse, Start, SPARE_LIFETIME};
use portico_tunnel::{ResetReason, Role, Tunnel, TunnelConfig};

use super::cluster::Cluster;
use super::directory::{Directory, EndpointKey, EndpointKind, LanePlace, LaneRefusal, Presence};
use super::join::{Joiner, DEFAULT_RECHECK};
use super::reach::{Reach, ReachError};
use crate::api::{system_clock, Clock};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("endpoint {0} is unknown in this tenant")]
    Unknown(String),
    #[error("endpoint {0} is not registered (pending or revoked)")]
    NotRegistered(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// Settings of the live relay.
#[derive(Clone)]
pub struct LiveOptions {
    pub clock: Clock,
    /// The tunnels' settings (windows, keep-alive).
    pub tunnel: TunnelConfig,
    /// How often a joined stream rereads its session.
    pub recheck: Duration,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            clock: system_clock(),
            tunnel: TunnelConfig::default(),
            recheck: DEFAULT_RECHECK,
        }
    }
}

/// The live relay: its directory and the joining of streams.
pub struct Relay {
    store: Store,
    directory: Arc<Directory>,
    joiner: Arc<Joiner>,
    /// Where streams to endpoints open (this node, or the node holding them).
    reach: Reach,
    /// In a cluster: this node's leases and links.
    cluster: Option<Arc<Cluster>>,
    clock: Clock,
    config: TunnelConfig,
}

impl Relay {
    pub fn new(store: Store, options: LiveOptions) -> Relay {
        Relay::build(store, options, None)
    }

    /// The relay of one node of a cluster: its tunnels' leases go to the database and
    /// streams to endpoints held by other nodes cross the links ([`Cluster`]).
    pub fn clustered(store: Store, options: LiveOptions, cluster: Arc<Cluster>) -> Relay {
        Relay::build(store, options, Some(cluster))
    }

    fn build(store: Store, options: LiveOptions, cluster: Option<Arc<Cluster>>) -> Relay {
        let directory = Arc::new(Directory::new());
        let mut joiner = Joiner::new(
            store.clone(),
            directory.clone(),
            options.clock.clone(),
            options.recheck,
        );
        if let Some(cluster) = &cluster {
            joiner = joiner.across(directory.clone(), cluster.clone());
        }
        Relay {
            store,
            reach: Reach::new(directory.clone(), cluster.clone()),
            directory,
            joiner: Arc::new(joiner),
            cluster,
            clock: options.clock,
            config: options.tunnel,
        }
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// This node's part in a cluster, if it is one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Opens a stream with `target` (`host:port`) on the endpoint's tunnel, on this node or
    /// (in a cluster) on the node holding it.
    pub async fn open_stream(
        &self,
        tenant: &str,
        endpoint: &str,
        target: &str,
    ) -> Result<portico_tunnel::TunnelStream, ReachError> {
        self.reach.open(tenant, endpoint, target).await
    }

    /// Runs the tunnel of endpoint `tenant`/`endpoint` over `transport`, which came from
    /// `address`. Refused (the transport dropped) unless the endpoint is registered.
    /// `moves`: the endpoint's agent said it moves streams from the tunnel to lanes
    /// (`portico_tunnel::lane::MOVES_OFFERED`).
    pub async fn attach<T, E>(
        &self,
        tenant: &str,
        endpoint: &str,
        address: &str,
        transport: T,
        moves: bool,
    ) -> Result<Presence, AttachError>
    where
        T: Stream<Item = Result<Bytes, E>> + Sink<Bytes, Error = E> + Send + 'static,
        E: Display + Send + 'static,
    {
        let record = self
            .store
            .endpoint(tenant, endpoint)
            .await?
            .ok_or_else(|| AttachError::Unknown(endpoint.to_string()))?;
        if record.state != EndpointState::Registered {
            return Err(AttachError::NotRegistered(endpoint.to_string()));
        }
        let (handle, mut incoming) = Tunnel::new(transport, Role::Relay, self.config.clone());
        let key = EndpointKey::new(tenant, endpoint);
        let presence = self.directory.insert(
            key.clone(),
            EndpointKind::from(&record.binding),
            address,
            (self.clock)(),
            handle,
            moves,
        );
        tracing::info!(tenant, endpoint, address, "endpoint online");
        if let Some(cluster) = &self.cluster {
            cluster.claim(&presence).await;
        }
        let (directory, joiner, connection) = (
            self.directory.clone(),
            self.joiner.clone(),
            presence.connection,
        );
        let cluster = self.cluster.clone();
        // Where this tunnel's streams wait for the lanes they move to.
        let moves = self
            .directory
            .moves(tenant, endpoint)
            .filter(|(_, _, on)| *on == connection)
            .map(|(board, cut, _)| (board, cut));
        tokio::spawn(async move {
            // Ends when the tunnel ends: replaced, revoked, dead or closed by the peer.
            while let Some(stream) = incoming.next().await {
                let (joiner, key, moves) = (joiner.clone(), key.clone(), moves.clone());
                tokio::spawn(async move {
                    let target = stream.target().to_string();
                    match joiner.join(&key, stream, moves).await {
                        Ok(t) => tracing::debug!(
                            endpoint = %key.name, %target, up = t.up, down = t.down,
                            end = ?t.end, "joined stream ended"
                        ),
                        Err(error) => tracing::info!(
                            tenant = %key.tenant, endpoint = %key.name, %target, %error,
                            "stream not joined"
                        ),
                    }
                });
            }
            if directory.remove(&key, connection) {
                tracing::info!(tenant = %key.tenant, endpoint = %key.name, "endpoint offline");
            }
            if let Some(cluster) = cluster {
                cluster.release(&key, connection).await;
            }
        });
        Ok(presence)
    }

    /// Serves a lane of endpoint `tenant`/`endpoint` (`portico_tunnel::lane`). Accepted only
    /// while the endpoint's tunnel is on this node and it holds fewer than
    /// `MAX_LANES_PER_ENDPOINT` lanes here, and ended with the tunnel. A dial lane waits
    /// for a stream to claim it; an open lane waits for the endpoint's `Open` and is then
    /// joined like a stream the endpoint opened on its tunnel, or for a `Moved` naming a
    /// stream of that tunnel joined here, which it then takes over.
    pub async fn lane(&self, tenant: &str, endpoint: &str, use_: LaneUse, lane: BoxLane) {
        let place = match self.directory.lane_permit(tenant, endpoint) {
            Ok(place) => place,
            Err(LaneRefusal::AtMaximum) => {
                tracing::info!(
                    tenant,
                    endpoint,
                    "lane refused: the endpoint holds its maximum"
                );
                return;
            }
            Err(LaneRefusal::TunnelElsewhere) => {
                tracing::debug!(
                    tenant,
                    endpoint,
                    "lane refused: the endpoint has no tunnel here"
                );
                return;
            }
        };
        let LanePlace { permit, cut, moves } = place;
        let mut lane = permit.hold(lane);
        let key = EndpointKey::new(tenant, endpoint);
        if use_ == LaneUse::Dial {
            self.directory.lanes().park(key, lane, cut);
            return;
        }
        // An agent replaces its spare open lanes before SPARE_LIFETIME; twice that is a
        // lane someone forgot.
        let start = tokio::select! {
            start = tokio::time::timeout(2 * SPARE_LIFETIME, lane::start(&mut lane)) => {
                start.ok().flatten()
            }
            () = cut.cancelled() => None,
        };
        let target = match start {
            Some(Start::Open(target)) => target,
            // The agent moves a stream it opened on its tunnel here to this lane: only a
            // stream of this endpoint's tunnel on this node, joined here, has a place.
            Some(Start::Moved(stream)) => {
                // Not beyond the tunnel's end: the lane ends with it (RS-9).
                let refused = match moves {
                    Some(board) => tokio::select! {
                        handed = board.hand_over(stream, lane) => handed.err(),
                        () = cut.cancelled() => return,
                    },
                    None => Some(lane),
                };
                if let Some(mut lane) = refused {
                    tracing::debug!(
                        tenant,
                        endpoint,
                        stream,
                        "a lane for a stream that has no place"
                    );
                    let _ = lane.send(lane::reset(ResetReason::ProtocolError)).await;
                }
                return;
            }
            Some(Start::Broken) => {
                let _ = lane.send(lane::reset(ResetReason::ProtocolError)).await;
                return;
            }
            None => return,
        };
        match self.joiner.join_lane(&key, &target, lane, cut).await {
            Ok(t) => tracing::debug!(
                endpoint, %target, up = t.up, down = t.down, end = ?t.end, "joined lane ended"
            ),
            Err(error) => {
                tracing::info!(tenant, endpoint, %target, %error, "lane stream not joined")
            }
        }
    }

    /// Whether a lane of the endpoint would be accepted here now, or why not. (The
    /// transport asks before the upgrade; [`Relay::lane`] decides again when the lane
    /// arrives.)
    pub fn lane_welcome(&self, tenant: &str, endpoint: &str) -> Result<(), LaneRefusal> {
        self.directory.lane_permit(tenant, endpoint).map(|_| ())
    }

    /// Closes every tunnel with `GoAway(shutting down)`: the relay stops.
    pub fn shut_down(&self) {
        self.directory.shut_down();
    }

    /// Cuts an endpoint's tunnel at once (RS-9); false when it was offline.
    pub fn revoke(&self, tenant: &str, endpoint: &str) -> bool {
        self.directory.revoke(tenant, endpoint)
    }
}
