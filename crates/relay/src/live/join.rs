//! Joining streams (RS-4, RS-5, RS-7). An endpoint opens a stream on the relay with target
//! `session:{id}/listener:{n}`; the relay decides, from the store and nothing the endpoint
//! says besides that target, whether and where it goes:
//!
//! 1. the connection session exists *in the opener's tenant* and is open now;
//! 2. the opener is the side that listens for the session's application: a Service
//!    Endpoint for a forward application (bound to the session's user, or to a site), the
//!    Device Endpoint of the session's device for DTT Reverse;
//! 3. listener `n` is a port mapping of the application;
//! 4. `rules::may_dial` allows the mapping's `host:port` for the *other* endpoint (the
//!    device's endpoint for forward, the application's target Service Endpoint for reverse).
//!
//! Then it opens a stream with target `host:port` on the other endpoint's tunnel and copies
//! bytes both ways until both sides close or the session's timeout, counting them for the
//! session. A refused stream is reset with `Refused`; one whose dialler is offline or whose
//! check could not be made (store failure) with `Unreachable`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::AtomicU64;

use futures_util::SinkExt;
use portico_store::{
    ConnectionSessionRecord, EndpointBinding, EndpointRecord, EndpointState, Store, StoreError,
};
use portico_tunnel::lane::board::MoveBoard;
use portico_tunnel::lane::{self, BoxLane};
use portico_tunnel::{IncomingStream, ResetReason, StreamId};
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::directory::{Directory, EndpointKey};
use super::pump::{self, Mover, Side};
use super::reach::{Reach, ReachError};
use super::session_watch::{SessionCheck, SessionWatches};
use super::target::{dial_target, ListenerTarget, TargetError};
use crate::api::Clock;
use crate::rules::{self, OpenConnection};
use crate::templates::{self, Direction};

/// Why a stream was not joined.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("the opening endpoint is unknown or not registered")]
    Opener,
    #[error("no connection session {0} in this tenant")]
    UnknownSession(String),
    #[error("connection session {0} has ended")]
    SessionClosed(String),
    #[error("this endpoint is not the listening side of connection session {0}")]
    WrongSide(String),
    #[error("the session's application has no listener {0}")]
    NoSuchListener(u16),
    #[error("endpoint {endpoint} may not dial {host}:{port} (RS-7)")]
    NotAllowed {
        endpoint: String,
        host: String,
        port: u16,
    },
    #[error("the dialling endpoint {0} is not online")]
    Offline(String),
    #[error(transparent)]
    Reach(ReachError),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

impl JoinError {
    /// The reset the opener sees.
    pub fn reset_reason(&self) -> ResetReason {
        match self {
            JoinError::Offline(_) | JoinError::Reach(_) | JoinError::Store(_) => {
                ResetReason::Unreachable
            }
            _ => ResetReason::Refused,
        }
    }
}

/// Where an allowed stream goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub session: ConnectionSessionRecord,
    /// The endpoint that dials `host:port`.
    pub dialler: String,
    pub host: String,
    pub port: u16,
    /// Whether the opener is the service side (forward): its bytes count as `up`.
    pub opener_is_service: bool,
}

/// What a joined stream carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Service side to device side.
    pub up: u64,
    /// Device side to service side.
    pub down: u64,
    /// What ended it.
    pub end: StreamEnd,
}

/// What ended a joined stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Both sides closed.
    Closed,
    /// A side reset it or its tunnel went away.
    Failed,
    /// The session reached its timeout (RS-8).
    TimedOut,
    /// The session was ended (by a user, an unassignment, a revocation).
    SessionEnded,
}

/// How often a joined stream rereads its session by default: a session a user ended (or
/// whose application was unassigned, or whose device endpoint was revoked) stops carrying
/// bytes within this time. The timeout itself is exact (a timer at `ends_ms`).
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(5);

/// Decides and joins streams for every tunnel of the relay.
pub struct Joiner {
    store: Store,
    directory: Arc<Directory>,
    reach: Reach,
    clock: Clock,
    /// The open sessions' rechecks, one per session whatever its number of streams.
    sessions: Arc<SessionWatches>,
}

impl Joiner {
    pub fn new(store: Store, directory: Arc<Directory>, clock: Clock, recheck: Duration) -> Joiner {
        let sessions = SessionWatches::new(recheck, still_open(store.clone(), clock.clone()));
        Joiner {
            store,
            reach: Reach::new(directory.clone(), None),
            directory,
            clock,
            sessions,
        }
    }

    /// A joiner of a node in a cluster: a dialler whose tunnel another node holds is reached
    /// over the link to that node. The decision and the byte counts stay here.
    pub fn across(mut self, directory: Arc<Directory>, cluster: Arc<Cluster>) -> Joiner {
        self.reach = Reach::new(directory, Some(cluster));
        self
    }

    /// Where a stream `opener` opens with `target` may go, or why it may not.
    pub async fn route(&self, opener: &EndpointKey, target: &str) -> Result<Route, JoinError> {
        let wanted = ListenerTarget::parse(target)?;
        let tenant = opener.tenant.as_str();
        // Read again per stream: a revocation or rebinding counts from the next stream on.
        // The reads go in two rounds of concurrent queries, not one after another: a
        // stream's open waits for them. So a store that fails any of a round's reads makes
        // the stream `Unreachable` (the check could not be made) even where a read that did
        // succeed would have refused it; either way it does not open. The device's endpoint
        // is read for every stream, though only a forward application's stream dials it.
        let (opener, session) = tokio::try_join!(
            self.store.endpoint(tenant, &opener.name),
            self.store.connection_session(tenant, &wanted.session),
        )?;
        let opener = opener
            .filter(|e| e.state == EndpointState::Registered)
            .ok_or(JoinError::Opener)?;
        let session = session.ok_or_else(|| JoinError::UnknownSession(wanted.session.clone()))?;
        let now = (self.clock)();
        if !session.is_open(now) {
            return Err(JoinError::SessionClosed(session.id));
        }
        let (app, assignments, device_endpoint) = tokio::try_join!(
            self.store.application(tenant, &session.application),
            self.store.assignments(tenant, Some(&session.device)),
            self.store
                .registered_device_endpoint(tenant, &session.device),
        )?;
        let app = app.ok_or_else(|| JoinError::WrongSide(session.id.clone()))?;
        let direction = templates::template(&app.template).map(|t| t.direction);
        let (dialler, opener_is_service) = match direction {
            Some(Direction::Forward) if self.listens_forward(&opener, &session).await? => {
                (device_endpoint, true)
            }
            Some(Direction::Reverse)
                if opener.binding == EndpointBinding::Device(session.device.clone()) =>
            {
                let name = app.target_endpoint.as_deref().unwrap_or_default();
                (self.store.endpoint(tenant, name).await?, false)
            }
            _ => return Err(JoinError::WrongSide(session.id)),
        };
        let mapping = app
            .mappings
            .get(usize::from(wanted.listener))
            .ok_or(JoinError::NoSuchListener(wanted.listener))?;
        let assigned = assignments.iter().any(|a| a.application == app.name);
        let open = [OpenConnection {
            session: &session,
            application: &app,
            assigned,
        }];
        let (host, port) = (mapping.target_host.clone(), mapping.target_port);
        let dialler = match dialler {
            Some(d) if rules::may_dial(&d, &host, port, &open, now) => d.name,
            other => {
                return Err(JoinError::NotAllowed {
                    endpoint: other.map(|d| d.name).unwrap_or_default(),
                    host,
                    port,
                })
            }
        };
        Ok(Route {
            session,
            dialler,
            host,
            port,
            opener_is_service,
        })
    }

    /// For a forward application the listening side is a Service Endpoint: one bound to the
    /// session's user, or one bound to the device's site or a site above it (shared by the
    /// people of that service network; the session id, 128 random bits the user got from the
    /// API, is what they must know). A site-bound endpoint of another site never listens.
    async fn listens_forward(
        &self,
        opener: &EndpointRecord,
        session: &ConnectionSessionRecord,
    ) -> Result<bool, StoreError> {
        match &opener.binding {
            EndpointBinding::ServiceUser(user) => Ok(*user == session.user_name),
            EndpointBinding::ServiceSite(site) => {
                let tenant = session.tenant.as_str();
                let Some(device) = self.store.device(tenant, &session.device).await? else {
                    return Ok(false);
                };
                let sites = self.store.sites(tenant).await?;
                Ok(crate::rules::site_chain(&sites, &device.site).contains(&site.as_str()))
            }
            EndpointBinding::Device(_) => Ok(false),
        }
    }

    /// Decides on a stream `opener` opened and, if allowed, joins it to a stream on the
    /// dialling endpoint (a lane of its, or its tunnel) until both close or the session ends
    /// or times out. The bytes are added to the session's counters whatever ended the copy.
    ///
    /// `moves`: the opener's tunnel's board and lanes' cut, if its agent moves streams:
    /// the stream then moves to an open lane of the opener's that names it.
    pub async fn join(
        &self,
        opener: &EndpointKey,
        incoming: IncomingStream,
        moves: Option<(Arc<MoveBoard>, CancellationToken)>,
    ) -> Result<Transfer, JoinError> {
        // The place is kept from the start: the agent may send the lane before the
        // decision is made.
        let (mover, _place, cut) = match moves {
            Some((board, cut)) => {
                let (lane, place) = board.expect(incoming.id());
                (Box::pin(lane) as Mover, Some(place), Some(cut))
            }
            None => (pump::never(), None, None),
        };
        let decided = match self.route(opener, incoming.target()).await {
            Ok(route) => self.open_on_dialler(&opener.tenant, route).await,
            Err(error) => Err(error),
        };
        match decided {
            Ok((route, dialled)) => {
                let opened = (Side::Stream(incoming.accept()), mover);
                self.carry(opener, &route, opened, cut, dialled).await
            }
            Err(error) => {
                incoming.refuse(error.reset_reason());
                Err(error)
            }
        }
    }

    /// The same for a stream `opener` opened on a lane of its own (`Open` already read);
    /// `cut` ends it with the opener's tunnel on this node.
    pub async fn join_lane(
        &self,
        opener: &EndpointKey,
        target: &str,
        mut lane: BoxLane,
        cut: CancellationToken,
    ) -> Result<Transfer, JoinError> {
        let decided = match self.route(opener, target).await {
            Ok(route) => self.open_on_dialler(&opener.tenant, route).await,
            Err(error) => Err(error),
        };
        match decided {
            Ok((route, dialled)) => {
                let opened = (Side::Lane(lane), pump::never());
                self.carry(opener, &route, opened, Some(cut), dialled).await
            }
            Err(error) => {
                let _ = lane.send(lane::reset(error.reset_reason())).await;
                Err(error)
            }
        }
    }

    /// Copies between the opener's stream and the dialler's until both close, the session
    /// ends or times out, or a side's tunnel goes; then counts the bytes for the session.
    /// A bulk stream is copied on the bulk runtime (`portico_fair::bulk`).
    async fn carry(
        &self,
        opener: &EndpointKey,
        route: &Route,
        opened: (Side, Mover),
        opener_cut: Option<CancellationToken>,
        dialled: Dialled,
    ) -> Result<Transfer, JoinError> {
        let (opener_bytes, dialler_bytes) = (Arc::<AtomicU64>::default(), Arc::default());
        let left_ms = route.session.ends_ms.saturating_sub((self.clock)()).max(0);
        let deadline = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        let copy = {
            let (a, b) = (Arc::clone(&opener_bytes), Arc::clone(&dialler_bytes));
            async move { pump::pass(opened, (dialled.side, dialled.mover), &a, &b).await }
        };
        // A stream that keeps carrying bytes leaves the threads of interactive ones.
        let moved = {
            let (a, b) = (Arc::clone(&opener_bytes), Arc::clone(&dialler_bytes));
            move || a.load(Ordering::Relaxed) + b.load(Ordering::Relaxed)
        };
        let copy = portico_fair::bulk::carry(copy, moved);
        let end = tokio::select! {
            copied = copy => {
                match copied {
                    Ok(_) => StreamEnd::Closed,
                    Err(error) => {
                        tracing::debug!(session = %route.session.id, %error, "joined stream failed");
                        StreamEnd::Failed
                    }
                }
            }
            () = tokio::time::sleep(deadline) => StreamEnd::TimedOut,
            () = self.sessions.ended(&opener.tenant, &route.session.id) => StreamEnd::SessionEnded,
            () = either_cut(opener_cut, dialled.cut) => StreamEnd::Failed,
        };
        // Dropping both sides here (with `copy`) resets whichever is still open.
        let (opened, dialled) = (
            opener_bytes.load(Ordering::Relaxed),
            dialler_bytes.load(Ordering::Relaxed),
        );
        let (up, down) = if route.opener_is_service {
            (opened, dialled)
        } else {
            (dialled, opened)
        };
        self.store
            .add_connection_bytes(
                &opener.tenant,
                &route.session.id,
                i64::try_from(up).unwrap_or(i64::MAX),
                i64::try_from(down).unwrap_or(i64::MAX),
            )
            .await?;
        Ok(Transfer { up, down, end })
    }

    /// Opens the stream on the dialler: on one of its idle lanes here if it has one, else
    /// on its tunnel (here or on the node holding it).
    async fn open_on_dialler(
        &self,
        tenant: &str,
        route: Route,
    ) -> Result<(Route, Dialled), JoinError> {
        let target = dial_target(&route.host, route.port);
        let key = EndpointKey::new(tenant, &route.dialler);
        if let (Some(mut lane), Some(cut)) = (
            self.directory.lanes().claim(&key).await,
            self.directory.cut(tenant, &route.dialler),
        ) {
            if lane.send(lane::open(&target)).await.is_ok() {
                tracing::debug!(tenant, dialler = %route.dialler, %target, "stream dialled on a lane");
                let side = Side::Lane(lane);
                let (cut, mover) = (Some(cut), pump::never());
                return Ok((route, Dialled { side, cut, mover }));
            }
        }
        match self
            .reach
            .open_placed(tenant, &route.dialler, &target)
            .await
        {
            Ok((stream, here)) => {
                // On this node's tunnel of an agent that moves streams, the stream moves to
                // the dialler's next idle dial lane.
                let moves = self.directory.moves(tenant, &route.dialler);
                let (mover, cut) = match moves {
                    Some((_, cut, connection)) if here == Some(connection) => {
                        let directory = self.directory.clone();
                        let mover = dial_lane_mover(directory, key, connection, stream.id());
                        (mover, Some(cut))
                    }
                    _ => (pump::never(), None),
                };
                let side = Side::Stream(stream);
                Ok((route, Dialled { side, cut, mover }))
            }
            Err(ReachError::Offline(endpoint)) => Err(JoinError::Offline(endpoint)),
            Err(ReachError::Store(error)) => Err(JoinError::Store(error)),
            Err(error) => Err(JoinError::Reach(error)),
        }
    }
}

/// The recheck of a session's streams: read from the store, open at the clock's now. A
/// store that fails to answer does not cut streams: it is retried at the next recheck.
fn still_open(store: Store, clock: Clock) -> SessionCheck {
    Arc::new(move |tenant: String, id: String| {
        let (store, clock) = (store.clone(), clock.clone());
        Box::pin(async move {
            match store.connection_session(&tenant, &id).await {
                Ok(Some(session)) => Some(session.is_open(clock())),
                Ok(None) => Some(false),
                Err(error) => {
                    tracing::warn!(%error, session = id, "could not recheck a session");
                    None
                }
            }
        })
    })
}

/// The dialler's side of a joined stream.
struct Dialled {
    side: Side,
    /// For a lane, or a stream that may move to one: what ends it with the dialler's
    /// tunnel (a tunnel stream ends by itself).
    cut: Option<CancellationToken>,
    /// The lane the stream moves to, if it runs on the tunnel.
    mover: Mover,
}

/// The relay moves a stream it opened on the dialler's tunnel (connection `connection`,
/// stream `stream`) to the dialler's next idle dial lane here: the lane's first frame,
/// `Moved`, names the stream. Never yields if the tunnel was replaced meanwhile: the
/// stream ends with its tunnel, and the lane belongs to the next one.
fn dial_lane_mover(
    directory: Arc<Directory>,
    key: EndpointKey,
    connection: u64,
    stream: StreamId,
) -> Mover {
    let same_tunnel = move |directory: &Directory, key: &EndpointKey| {
        directory
            .presence(&key.tenant, &key.name)
            .is_some_and(|p| p.connection == connection)
    };
    Box::pin(async move {
        loop {
            if !same_tunnel(&directory, &key) {
                return std::future::pending().await;
            }
            let mut lane = directory.lanes().claim_when_parked(&key).await;
            if !same_tunnel(&directory, &key) {
                // The next tunnel's lane: it ends here, and that agent opens another.
                drop(lane);
                return std::future::pending().await;
            }
            if lane.send(lane::moved(stream)).await.is_ok() {
                tracing::debug!(endpoint = %key.name, stream, "a dialled stream moves to a lane");
                return lane;
            }
        }
    })
}

/// Returns when either side's tunnel is cut; never when neither can be.
async fn either_cut(a: Option<CancellationToken>, b: Option<CancellationToken>) {
    let wait = |cut: Option<CancellationToken>| async move {
        match cut {
            Some(cut) => cut.cancelled_owned().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = wait(a) => {}
        () = wait(b) => {}
    }
}
