//! Accepting links: each connection on `cluster.link_listen` must pass the handshake; then
//! every stream the peer node opens names an endpoint whose tunnel this node holds and the
//! target to open on it. The decision whether the stream may go was made, and its bytes are
//! counted, on the node where the opening endpoint is attached: here it is only carried.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use portico_fair::Fair;
use portico_tunnel::{IncomingStream, ResetReason, Role, Tunnel, TunnelConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::handshake::{self, LinkSecret};
use super::{parse_link_target, transport};
use crate::live::directory::Directory;
use crate::live::pump::{self, Side};

/// Accepts links until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    directory: Arc<Directory>,
    secret: LinkSecret,
    config: TunnelConfig,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let (directory, secret, config) =
                    (directory.clone(), secret.clone(), config.clone());
                tokio::spawn(async move {
                    if let Err(error) = run_link(socket, directory, secret, config).await {
                        tracing::warn!(%peer, %error, "node link refused");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept a node link");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn run_link(
    mut socket: TcpStream,
    directory: Arc<Directory>,
    secret: LinkSecret,
    config: TunnelConfig,
) -> Result<(), handshake::HandshakeError> {
    handshake::accept(&mut socket, &secret).await?;
    let _ = socket.set_nodelay(true);
    let peer = socket
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%peer, "node link open");
    let (handle, mut incoming) =
        Tunnel::new(transport::messages(Fair::new(socket)), Role::Relay, config);
    while let Some(stream) = incoming.next().await {
        let directory = directory.clone();
        tokio::spawn(carry(stream, directory));
    }
    tracing::info!(%peer, error = ?handle.error(), "node link closed");
    Ok(())
}

/// Opens the stream's target on the local endpoint's tunnel and copies both ways.
async fn carry(stream: IncomingStream, directory: Arc<Directory>) {
    let named = stream.target().to_string();
    let Some((tenant, endpoint, target)) = parse_link_target(&named) else {
        stream.refuse(ResetReason::Refused);
        return;
    };
    let Some(tunnel) = directory.tunnel(tenant, endpoint) else {
        tracing::info!(
            tenant,
            endpoint,
            "linked stream for an endpoint not held here"
        );
        stream.refuse(ResetReason::Unreachable);
        return;
    };
    let outbound = match tunnel.open(target) {
        Ok(outbound) => outbound,
        Err(error) => {
            tracing::info!(tenant, endpoint, %error, "linked stream not opened on the tunnel");
            stream.refuse(ResetReason::Unreachable);
            return;
        }
    };
    let inbound = stream.accept();
    // The node that joins the stream to its opener counts it; this one only carries it.
    // Neither side moves: a linked stream stays on its tunnels.
    let (inbound, outbound) = (
        (Side::Stream(inbound), pump::never()),
        (Side::Stream(outbound), pump::never()),
    );
    let uncounted = (AtomicU64::new(0), AtomicU64::new(0));
    if let Err(error) = pump::pass(inbound, outbound, &uncounted.0, &uncounted.1).await {
        tracing::debug!(tenant, endpoint, %error, "linked stream failed");
    }
}
