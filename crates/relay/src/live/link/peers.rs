//! The links this node opened: one per peer node (by its advertised address), dialled when
//! a stream first needs it and reused while it lives; a link that ended is dialled again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portico_fair::Fair;
use portico_tunnel::{
    OpenStreamError, ResetReason, Role, Tunnel, TunnelConfig, TunnelHandle, TunnelStream,
};
use tokio::net::TcpStream;

use super::handshake::{self, HandshakeError, LinkSecret};
use super::transport;

/// How long connecting to a peer node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to node link {address}: {error}")]
    Connect { address: String, error: String },
    #[error("node link {address}: {error}")]
    Handshake {
        address: String,
        error: HandshakeError,
    },
    #[error("node link {address}: cannot open a stream: {error}")]
    Open {
        address: String,
        error: OpenStreamError,
    },
}

/// One peer's link, dialled by one caller at a time.
type Slot = Arc<tokio::sync::Mutex<Option<TunnelHandle>>>;

/// The links to the other nodes.
pub struct LinkPeers {
    secret: LinkSecret,
    config: TunnelConfig,
    links: Mutex<HashMap<String, Slot>>,
}

impl LinkPeers {
    pub fn new(secret: LinkSecret, config: TunnelConfig) -> LinkPeers {
        LinkPeers {
            secret,
            config,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a stream with `target` (see [`super::link_target`]) on the link to the node at
    /// `address`, dialling it if there is none alive.
    pub async fn open(&self, address: &str, target: &str) -> Result<TunnelStream, LinkError> {
        let slot = self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(address.to_string())
            .or_default()
            .clone();
        let mut link = slot.lock().await;
        if let Some(handle) = link.as_ref().filter(|h| h.error().is_none()) {
            match handle.open(target) {
                Ok(stream) => return Ok(stream),
                // Ended since the check: dial again below.
                Err(OpenStreamError::Ended(_)) => {}
                Err(error) => {
                    return Err(LinkError::Open {
                        address: address.to_string(),
                        error,
                    })
                }
            }
        }
        let handle = self.dial(address).await?;
        let opened = handle.open(target).map_err(|error| LinkError::Open {
            address: address.to_string(),
            error,
        });
        *link = Some(handle);
        opened
    }

    async fn dial(&self, address: &str) -> Result<TunnelHandle, LinkError> {
        let connect_error = |error: String| LinkError::Connect {
            address: address.to_string(),
            error,
        };
        let mut socket = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;
        handshake::dial(&mut socket, &self.secret)
            .await
            .map_err(|error| LinkError::Handshake {
                address: address.to_string(),
                error,
            })?;
        let _ = socket.set_nodelay(true);
        let (handle, mut incoming) = Tunnel::new(
            transport::messages(Fair::new(socket)),
            Role::Service,
            self.config.clone(),
        );
        // Links carry streams one way: the peer opens its own link for the other.
        tokio::spawn(async move {
            while let Some(stream) = incoming.next().await {
                stream.refuse(ResetReason::Refused);
            }
        });
        tracing::info!(address, "node link dialled");
        Ok(handle)
    }
}
