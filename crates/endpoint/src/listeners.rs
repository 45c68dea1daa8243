//! The listening side's local listeners: on `connect`, one TCP listener per port mapping of
//! the session; each accepted connection becomes a tunnel stream to the listener's target.
//! A session's listeners and their connections close on `disconnect`, at the timeout, or when
//! the relay does not announce the session again within a grace period after a reconnect.
//! Listeners survive a reconnect: a `connect` for a session whose listener is open on the
//! same port keeps it, so there is no race to bind the port again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use portico_tunnel::control::Listener;
use portico_tunnel::lane::{self, LANE_KEEP_ALIVE};
use portico_tunnel::tunnel::TunnelHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::lanes::LanePool;

/// The tunnel of the current connection to the backend; `None` while reconnecting.
pub type TunnelSlot = watch::Receiver<Option<TunnelHandle>>;

struct OpenListener {
    target: String,
    closed: CancellationToken,
}

struct SessionListeners {
    expires: Instant,
    unconfirmed_since: Option<Instant>,
    ports: HashMap<u16, OpenListener>,
    closed: CancellationToken,
}

/// How binding one listener went, for the log and the caller.
#[derive(Debug)]
pub struct BindOutcome {
    pub local_port: u16,
    pub result: Result<(), std::io::Error>,
}

pub struct ListenerSet {
    address: IpAddr,
    tunnel: TunnelSlot,
    lanes: Arc<LanePool>,
    sessions: HashMap<String, SessionListeners>,
}

impl ListenerSet {
    pub fn new(address: IpAddr, tunnel: TunnelSlot, lanes: Arc<LanePool>) -> Self {
        ListenerSet {
            address,
            tunnel,
            lanes,
            sessions: HashMap::new(),
        }
    }

    /// Opens (or keeps) the session's listeners for `timeout`. Listeners of the session on
    /// ports no longer announced are closed. A port that cannot be bound is reported in the
    /// outcome and skipped; the others still open.
    pub fn connect(
        &mut self,
        session: &str,
        listeners: &[Listener],
        timeout: Duration,
        now: Instant,
    ) -> Vec<BindOutcome> {
        let entry = self
            .sessions
            .entry(session.to_string())
            .or_insert_with(|| SessionListeners {
                expires: now,
                unconfirmed_since: None,
                ports: HashMap::new(),
                closed: CancellationToken::new(),
            });
        entry.expires = now
            .checked_add(timeout)
            .unwrap_or(now + crate::permits::FAR_FUTURE);
        entry.unconfirmed_since = None;
        entry.ports.retain(|port, open| {
            let wanted = listeners
                .iter()
                .any(|l| l.local_port == *port && l.target == open.target);
            if !wanted {
                open.closed.cancel();
            }
            wanted
        });
        let mut outcomes = Vec::new();
        for listener in listeners {
            if entry.ports.contains_key(&listener.local_port) {
                continue;
            }
            let addr = SocketAddr::new(self.address, listener.local_port);
            let result = bind(addr).map(|tcp| {
                let closed = entry.closed.child_token();
                tokio::spawn(serve(
                    tcp,
                    listener.target.clone(),
                    self.tunnel.clone(),
                    self.lanes.clone(),
                    closed.clone(),
                ));
                entry.ports.insert(
                    listener.local_port,
                    OpenListener {
                        target: listener.target.clone(),
                        closed,
                    },
                );
            });
            match &result {
                Ok(()) => tracing::info!(session, %addr, target = %listener.target, "listening"),
                Err(error) => tracing::error!(
                    session,
                    %addr,
                    %error,
                    "cannot open the local listener; the session's other listeners stay"
                ),
            }
            outcomes.push(BindOutcome {
                local_port: listener.local_port,
                result,
            });
        }
        outcomes
    }

    /// Closes the session's listeners and their connections.
    pub fn disconnect(&mut self, session: &str) -> bool {
        match self.sessions.remove(session) {
            Some(s) => {
                s.closed.cancel();
                tracing::info!(session, ports = ?s.ports.keys().collect::<Vec<_>>(), "listeners closed");
                true
            }
            None => false,
        }
    }

    /// After a reconnect: every session waits to be announced again.
    pub fn reconnected(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            s.unconfirmed_since = Some(now);
        }
    }

    /// Closes sessions past their timeout and those not announced within `grace` of a
    /// reconnect. Returns the sessions closed.
    pub fn sweep(&mut self, now: Instant, grace: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                now >= s.expires || s.unconfirmed_since.is_some_and(|t| now >= t + grace)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.disconnect(id);
        }
        gone
    }

    /// Whether no session has listeners here.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The local ports open for a session.
    pub fn ports(&self, session: &str) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .sessions
            .get(session)
            .map(|s| s.ports.keys().copied().collect())
            .unwrap_or_default();
        ports.sort_unstable();
        ports
    }

    pub fn close_all(&mut self) {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            self.disconnect(&id);
        }
    }
}

/// Binds without waiting (std, then handed to tokio), so the set can be changed under a lock.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    TcpListener::from_std(std_listener)
}

async fn serve(
    listener: TcpListener,
    target: String,
    tunnel: TunnelSlot,
    lanes: Arc<LanePool>,
    closed: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = closed.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let handle = tunnel.borrow().clone();
                match handle {
                    Some(handle) => {
                        let lanes = lanes.clone();
                        tokio::spawn(forward(
                            tcp,
                            handle,
                            lanes,
                            target.clone(),
                            closed.child_token(),
                        ));
                    }
                    None => {
                        tracing::warn!(%peer, %target, "no tunnel to the backend right now; connection dropped");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a local connection failed");
                // A transient error (e.g. out of file descriptors): do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Carries a local connection on a spare lane if there is one, else on the tunnel.
async fn forward(
    mut tcp: TcpStream,
    tunnel: TunnelHandle,
    lanes: Arc<LanePool>,
    target: String,
    closed: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    if let Some(mut lane) = lanes.take_open() {
        if lane.send(lane::open(&target)).await.is_ok() {
            crate::lanes::carry(tcp, lane, closed, target).await;
            return;
        }
    }
    let stream = match tunnel.open(&target) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%target, %error, "cannot open a tunnel stream");
            return;
        }
    };
    // Once a spare lane is at hand, the stream moves there (docs/tunnel.md, "Moving a
    // stream to a lane").
    let lane = lanes.lane_to_move(&tunnel, stream.id());
    let carried =
        portico_tunnel::carry::join_tcp_moving(&mut tcp, &stream, lane, Some(LANE_KEEP_ALIVE));
    tokio::select! {
        _ = closed.cancelled() => {}
        result = carried => {
            if let Err(error) = result {
                tracing::debug!(%target, %error, "forwarded connection ended");
            }
        }
    }
}
