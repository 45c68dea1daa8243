//! Attaching an endpoint's tunnel to the relay. The transport layer (the WebSocket
//! upgrade on `/mts/`) authenticates the endpoint from its bearer token and hands the
//! relay the tenant, the endpoint name, the peer's address and the message transport; the
//! relay checks the endpoint is registered, runs the tunnel, lists it in the directory
//! (replacing an older tunnel of the same endpoint) and joins every stream it opens.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use portico_store::{EndpointState, Store, StoreError};
use portico_tunnel::{Role, Tunnel, TunnelConfig};

use super::directory::{Directory, EndpointKey, EndpointKind, Presence};
use super::join::{Joiner, DEFAULT_RECHECK};
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
    clock: Clock,
    config: TunnelConfig,
}

impl Relay {
    pub fn new(store: Store, options: LiveOptions) -> Relay {
        let directory = Arc::new(Directory::new());
        let joiner = Arc::new(Joiner::new(
            store.clone(),
            directory.clone(),
            options.clock.clone(),
            options.recheck,
        ));
        Relay {
            store,
            directory,
            joiner,
            clock: options.clock,
            config: options.tunnel,
        }
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Runs the tunnel of endpoint `tenant`/`endpoint` over `transport`, which came from
    /// `address`. Refused (the transport dropped) unless the endpoint is registered.
    pub async fn attach<T, E>(
        &self,
        tenant: &str,
        endpoint: &str,
        address: &str,
        transport: T,
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
        );
        tracing::info!(tenant, endpoint, address, "endpoint online");
        let (directory, joiner, connection) = (
            self.directory.clone(),
            self.joiner.clone(),
            presence.connection,
        );
        tokio::spawn(async move {
            // Ends when the tunnel ends: replaced, revoked, dead or closed by the peer.
            while let Some(stream) = incoming.next().await {
                let (joiner, key) = (joiner.clone(), key.clone());
                tokio::spawn(async move {
                    let target = stream.target().to_string();
                    match joiner.join(&key, stream).await {
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
        });
        Ok(presence)
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
