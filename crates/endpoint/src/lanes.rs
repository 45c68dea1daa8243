//! The agent's lanes (`portico_tunnel::lane`): while a session may use them, the agent
//! keeps a few spare lanes open to the relay, so that a new stream gets a WebSocket of its
//! own at once. *Open* lanes are kept while the agent listens for a session (it opens the
//! streams); *dial* lanes while it holds a permit (the relay asks it to dial on them). A
//! stream that finds no spare opens on the tunnel, as it always could, and moves to a lane
//! once one is at hand (`LanePool::lane_to_move`; the relay moves the streams it opened on
//! this agent's tunnel to its dial lanes, `serve_dial_lane`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt, TryStreamExt};
use portico_fair::bulk::MovableTcp;
use portico_tunnel::lane::board::{MoveBoard, Place};
use portico_tunnel::lane::{
    self, BoxLane, LaneIo, LaneUse, Start, LANE_KEEP_ALIVE, SPARE_LIFETIME,
};
use portico_tunnel::{ResetReason, StreamId, TunnelHandle};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::agent::{Agent, TokenCache};
use crate::allow::AllowList;
use crate::connect::ConnectError;
use crate::dialing;
use crate::permits::Permits;
use crate::transport::WebSocketTransport;

/// Spare lanes of each use kept while a session may need them.
pub const SPARE_LANES: usize = 4;
/// The most spares of one use an agent keeps after bursts of streams.
pub const MAX_SPARE_LANES: usize = 32;
/// How long a raised number of spares is kept after the last burst that ran out.
const DEMAND_MEMORY: Duration = Duration::from_secs(30);
/// A spare open lane is replaced at this age, before the relay gives up on it.
const OPEN_LANE_MAX_AGE: Duration = Duration::from_secs(SPARE_LIFETIME.as_secs() - 5);
/// After a lane could not be opened (a relay without lanes, a proxy refusing more
/// connections), streams use the tunnel for this long before lanes are tried again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How many spares of one use to keep: `SPARE_LANES`, plus one for every stream that found
/// none (up to `MAX_SPARE_LANES`), back to `SPARE_LANES` after `DEMAND_MEMORY` without such a
/// stream. The streams of a burst beyond the spares use the tunnel; the next burst of the
/// same size finds a lane for each.
struct Demand {
    wanted: usize,
    missed_at: Option<Instant>,
}

impl Default for Demand {
    fn default() -> Demand {
        Demand {
            wanted: SPARE_LANES,
            missed_at: None,
        }
    }
}

impl Demand {
    fn missed(&mut self) {
        self.wanted = (self.wanted + 1).min(MAX_SPARE_LANES);
        self.missed_at = Some(Instant::now());
    }

    fn wanted(&mut self) -> usize {
        if self
            .missed_at
            .is_some_and(|at| at.elapsed() >= DEMAND_MEMORY)
        {
            *self = Demand::default();
        }
        self.wanted
    }
}

/// The spare lanes of one connection to the backend.
#[derive(Default)]
pub struct LanePool {
    /// Whether lanes are opened as framed lanes (the relay offers them, and nothing in front
    /// of it refused one) rather than as WebSockets.
    framed: AtomicBool,
    /// Whether the relay moves streams from the tunnel to lanes (`MOVES_OFFERED`).
    moves: AtomicBool,
    open: Mutex<Vec<(BoxLane, Instant)>>,
    idle_dial: AtomicUsize,
    open_demand: Mutex<Demand>,
    dial_demand: Mutex<Demand>,
    changed: Notify,
    /// A spare open lane was added: streams waiting to move look again.
    open_added: Notify,
    /// The tunnel streams the relay opened on this connection's tunnel that a dial lane
    /// may take over.
    movable: Mutex<Arc<MoveBoard>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LanePool {
    fn open_lanes(&self) -> MutexGuard<'_, Vec<(BoxLane, Instant)>> {
        lock(&self.open)
    }

    /// A spare open lane, the newest, if there is one young enough and still open. The relay
    /// sends nothing on an idle open lane, so one with anything to read has ended.
    pub fn take_open(&self) -> Option<BoxLane> {
        let lane = self.pop_open();
        if lane.is_none() {
            lock(&self.open_demand).missed();
        }
        lane
    }

    fn pop_open(&self) -> Option<BoxLane> {
        let lane = {
            let mut open = self.open_lanes();
            open.retain(|(_, at)| at.elapsed() < OPEN_LANE_MAX_AGE);
            std::iter::from_fn(|| open.pop())
                .map(|(lane, _)| lane)
                .find_map(|mut lane| lane.next().now_or_never().is_none().then_some(lane))
        };
        // Taken or not, the spares are looked at again.
        self.changed.notify_one();
        lane
    }

    /// A lane for the tunnel stream `tunnel`'s `stream` (which this agent opened) to move
    /// to, once there is a spare open lane and the relay moves streams: the lane's first
    /// frame, `Moved`, is sent. Never returns if the relay does not move streams or the
    /// tunnel has ended (a spare then belongs to the next connection). A stream that found
    /// no spare at its start raised the spares wanted, so one comes soon.
    pub async fn lane_to_move(&self, tunnel: &TunnelHandle, stream: StreamId) -> BoxLane {
        loop {
            let added = self.open_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if !self.moves.load(Ordering::Relaxed) || tunnel.error().is_some() {
                return std::future::pending().await;
            }
            if let Some(mut lane) = self.pop_open() {
                // Looked at again with the lane in hand: the next connection's lanes come
                // only after this tunnel was closed. Such a lane ends here; its connection
                // opens another.
                if tunnel.error().is_some() {
                    drop(lane);
                    return std::future::pending().await;
                }
                if lane.send(lane::moved(stream)).await.is_ok() {
                    tracing::info!(stream, "a tunnel stream moves to a lane");
                    return lane;
                }
                continue;
            }
            added.await;
        }
    }

    /// Keeps a place for a lane the relay may send to take over tunnel stream `stream`
    /// (one it opened on this connection's tunnel): the returned future yields the lane
    /// once it came. The place goes when the returned guard is dropped.
    pub fn expect_move(
        &self,
        stream: StreamId,
    ) -> (impl Future<Output = BoxLane> + Send + 'static, Place) {
        lock(&self.movable).expect(stream)
    }

    /// The relay opened a stream on the tunnel to be dialled: it had no dial lane at hand.
    pub fn dial_missed(&self) {
        lock(&self.dial_demand).missed();
        self.changed.notify_one();
    }

    /// The connection ended: its lanes go with it, and its streams' places for a lane.
    pub fn clear(&self) {
        self.open_lanes().clear();
        *lock(&self.movable) = Arc::default();
    }

    /// Spare (open, dial) lanes now.
    pub fn spares(&self) -> (usize, usize) {
        (
            self.open_lanes().len(),
            self.idle_dial.load(Ordering::Relaxed),
        )
    }
}

/// Keeps the spares for as long as the connection runs (the caller drops this future when
/// the connection ends). Lanes open several at a time: over a long round trip and a proxy
/// each takes a few round trips. `framed`: the relay offers framed lanes.
pub(crate) async fn maintain(
    agent: &Agent,
    tokens: &mut TokenCache,
    framed: bool,
    moves: bool,
) -> Infallible {
    let pool = agent.shared.lanes.clone();
    // This connection's streams' places (a new board comes with the next connection).
    let board = lock(&pool.movable).clone();
    pool.framed.store(framed, Ordering::Relaxed);
    pool.moves.store(moves, Ordering::Relaxed);
    // Idle dial lanes wait with this connection: dropping this future ends their wait, so
    // the count of idle dial lanes is right again for the next connection.
    let connection = tokio_util::sync::CancellationToken::new();
    let _connection_ends = connection.clone().drop_guard();
    let mut opening = FuturesUnordered::new();
    let (mut opening_open, mut opening_dial) = (0, 0);
    let mut paused_until: Option<Instant> = None;
    // After a lane could not be opened, one lane is tried before many are.
    let mut probing = false;
    loop {
        let want_open = match agent.shared.listeners().is_empty() {
            true => 0,
            false => lock(&pool.open_demand).wanted(),
        };
        let want_dial = match agent.shared.permits().is_empty() {
            true => 0,
            false => lock(&pool.dial_demand).wanted(),
        };
        pool.open_lanes()
            .retain(|(_, at)| at.elapsed() < OPEN_LANE_MAX_AGE);
        let (open, dial) = pool.spares();
        let mut missing_open = want_open.saturating_sub(open + opening_open);
        let mut missing_dial = want_dial.saturating_sub(dial + opening_dial);
        if probing {
            let in_flight = opening_open + opening_dial;
            missing_open = missing_open.min(1usize.saturating_sub(in_flight));
            missing_dial = missing_dial.min(1usize.saturating_sub(in_flight + missing_open));
        }
        let paused = paused_until.is_some_and(|until| Instant::now() < until);
        if !paused && missing_open + missing_dial > 0 {
            match agent.token(tokens).await {
                Ok(token) => {
                    let uses = std::iter::repeat_n(LaneUse::Open, missing_open)
                        .chain(std::iter::repeat_n(LaneUse::Dial, missing_dial));
                    for use_ in uses {
                        let token = token.clone();
                        opening.push(async move { (use_, open_lane(agent, &token, use_).await) });
                    }
                    opening_open += missing_open;
                    opening_dial += missing_dial;
                }
                Err(error) => {
                    tracing::info!(%error, "no token for lanes; streams use the tunnel for now");
                    paused_until = Some(Instant::now() + RETRY_AFTER);
                }
            }
        }
        tokio::select! {
            Some((use_, opened)) = opening.next() => {
                match use_ {
                    LaneUse::Open => opening_open -= 1,
                    LaneUse::Dial => opening_dial -= 1,
                }
                probing = opened.is_err();
                match opened {
                    Ok(lane) if use_ == LaneUse::Open => {
                        pool.open_lanes().push((lane, Instant::now()));
                        pool.open_added.notify_waiters();
                    }
                    Ok(lane) => {
                        pool.idle_dial.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(serve_dial_lane(
                            lane,
                            agent.shared.permits.clone(),
                            agent.config.allow.clone(),
                            pool.clone(),
                            board.clone(),
                            connection.clone(),
                        ));
                    }
                    Err(error) => {
                        if !paused {
                            tracing::info!(%error, "cannot open a lane; streams use the tunnel for now");
                        }
                        paused_until = Some(Instant::now() + RETRY_AFTER);
                    }
                }
            }
            () = pool.changed.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Opens a lane: a framed lane while the relay takes them, else a WebSocket lane.
async fn open_lane(
    agent: &Agent,
    token: &str,
    use_: LaneUse,
) -> Result<BoxLane, crate::connect::ConnectError> {
    let pool = &agent.shared.lanes;
    if pool.framed.load(Ordering::Relaxed) {
        match agent.dialer.open_framed_lane(use_.path(), token).await {
            Ok(lane) => return Ok(Box::pin(lane)),
            // Not understood on the way: a balancer in front of the relay that passes
            // WebSocket upgrades only. WebSocket lanes from now on, for this connection.
            Err(error) if not_understood(&error) => {
                if pool.framed.swap(false, Ordering::Relaxed) {
                    tracing::info!(%error, "a framed lane was not understood; lanes use WebSocket");
                }
            }
            Err(error) => return Err(error),
        }
    }
    let socket = agent.dialer.open(use_.path(), token).await?;
    let transport = WebSocketTransport::new(socket)
        .sink_map_err(std::io::Error::other)
        .map_err(std::io::Error::other);
    Ok(Box::pin(transport))
}

/// Whether a framed lane failed as something that does not know `portico-lane` fails: an
/// answer refusing the request or its upgrade, or an upgrade that did not happen. The relay's
/// own refusals of a lane (401 and 403, 421 elsewhere, 429 at its maximum) are not that: they
/// would refuse a WebSocket lane alike.
fn not_understood(error: &ConnectError) -> bool {
    use http::StatusCode;
    match error {
        ConnectError::UpgradeRefused { status, .. } => matches!(
            *status,
            StatusCode::BAD_REQUEST
                | StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::UPGRADE_REQUIRED
                | StatusCode::NOT_IMPLEMENTED
        ),
        ConnectError::LaneUpgrade { .. } => true,
        _ => false,
    }
}

/// Waits for the relay's `Open` on a dial lane, then dials like a stream from the tunnel:
/// only a target a live permit names (and the allow list, if any, matches), RS-7.
async fn serve_dial_lane(
    mut lane: BoxLane,
    permits: Arc<Mutex<Permits>>,
    allow: Option<AllowList>,
    pool: Arc<LanePool>,
    board: Arc<MoveBoard>,
    connection: tokio_util::sync::CancellationToken,
) {
    // The relay ends idle dial lanes at SPARE_LIFETIME; a lane still silent at twice that
    // lost its connection without a word.
    let start = tokio::select! {
        start = tokio::time::timeout(2 * SPARE_LIFETIME, lane::start(&mut lane)) => {
            start.ok().flatten()
        }
        () = connection.cancelled() => None,
    };
    pool.idle_dial.fetch_sub(1, Ordering::Relaxed);
    pool.changed.notify_one();
    let target = match start {
        Some(Start::Open(target)) => target,
        // The relay moves a stream it opened on the tunnel to this lane. Only a stream the
        // relay opened here and this agent dialled (RS-7 was decided then) has a place.
        Some(Start::Moved(stream)) => {
            // Not beyond the connection's end: its streams end with it.
            let handed = tokio::select! {
                handed = board.hand_over(stream, lane) => handed,
                () = connection.cancelled() => return,
            };
            match handed {
                Ok(()) => tracing::info!(stream, "the relay moves a tunnel stream to a lane"),
                Err(mut lane) => {
                    tracing::warn!(stream, "a lane for a tunnel stream that has no place");
                    let _ = lane.send(lane::reset(ResetReason::ProtocolError)).await;
                }
            }
            return;
        }
        Some(Start::Broken) | None => return,
    };
    let closed = match dialing::check(&target, &permits, allow.as_ref()) {
        Ok(closed) => closed,
        Err(why) => {
            tracing::warn!(target = %target, reason = why, "refused a lane stream from the relay");
            let _ = lane.send(lane::reset(ResetReason::Refused)).await;
            return;
        }
    };
    let tcp: TcpStream = match dialing::connect(&target).await {
        Ok(tcp) => tcp,
        Err(reason) => {
            let _ = lane.send(lane::reset(reason)).await;
            return;
        }
    };
    carry(tcp, lane, closed, target).await;
}

/// Copies between a local connection and the stream of a lane (its `Open` sent or received)
/// until both directions end or `closed` (the session's listeners or permit) fires. A
/// stream that keeps carrying bytes is copied on the bulk runtime (`portico_fair::bulk`),
/// away from the threads of interactive ones.
pub(crate) async fn carry(
    tcp: TcpStream,
    lane: BoxLane,
    closed: tokio_util::sync::CancellationToken,
    target: String,
) {
    // The lane's connection takes fair turns (`BackendSocket`), so this copy yields to the
    // agent's other tasks once a turn's bytes have moved either way.
    let moved = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&moved);
    // Both connections go to the bulk runtime with the stream, if it moves there.
    let mut tcp = MovableTcp::new(tcp);
    let mut lane = LaneIo::new(lane, Some(LANE_KEEP_ALIVE));
    let copy = async move {
        tokio::select! {
            _ = closed.cancelled() => {}
            result = portico_tunnel::carry::join_tcp_lane(&mut tcp, &mut lane, &counted) => {
                if let Err(error) = result {
                    tracing::debug!(%target, %error, "lane stream ended");
                }
            }
        }
    };
    portico_fair::bulk::carry(copy, move || moved.load(Ordering::Relaxed)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_tunnel::Frame;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    const LIMIT: Duration = Duration::from_secs(10);

    async fn next_frame(lane: &mut BoxLane) -> Option<Frame> {
        match tokio::time::timeout(LIMIT, lane.next()).await.unwrap() {
            Some(Ok(message)) => Some(lane::decode(message).unwrap()),
            _ => None,
        }
    }

    /// A spare whose other end has gone is never handed to a stream; a live one is, and a
    /// stream that finds none raises the spares wanted.
    #[tokio::test]
    async fn only_live_spares_are_taken() {
        let pool = LanePool::default();
        let (dead, gone) = lane::memory_pair();
        drop(gone);
        let (live, _peer) = lane::memory_pair();
        tokio::task::yield_now().await;
        pool.open_lanes().push((live, Instant::now()));
        pool.open_lanes().push((dead, Instant::now()));
        assert!(
            pool.take_open().is_some(),
            "the live lane under the dead one"
        );
        assert_eq!(pool.spares(), (0, 0));
        assert_eq!(lock(&pool.open_demand).wanted(), SPARE_LANES);
        assert!(pool.take_open().is_none());
        assert_eq!(lock(&pool.open_demand).wanted(), SPARE_LANES + 1);
    }

    /// An idle dial lane served by the agent; returns the relay's end.
    fn dial_lane(permits: &Arc<Mutex<Permits>>, pool: &Arc<LanePool>) -> BoxLane {
        let (agent, relay) = lane::memory_pair();
        pool.idle_dial.fetch_add(1, Ordering::Relaxed);
        let connection = CancellationToken::new();
        tokio::spawn(serve_dial_lane(
            agent,
            permits.clone(),
            None,
            pool.clone(),
            Arc::default(),
            connection,
        ));
        relay
    }

    /// A hostile relay asks on a dial lane for targets no permit names: refused before any
    /// connection is attempted; a permitted one is dialled and carries bytes.
    #[tokio::test]
    async fn a_dial_lane_dials_only_what_a_permit_names() {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let permitted = echo.local_addr().unwrap().to_string();
        let dialled = Arc::new(AtomicUsize::new(0));
        let seen = dialled.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = echo.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = tcp.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let permits = Arc::new(Mutex::new(Permits::default()));
        permits.lock().unwrap().grant(
            "s1",
            std::slice::from_ref(&permitted),
            Duration::from_secs(60),
            Instant::now(),
        );
        let pool = Arc::new(LanePool::default());
        let port = permitted.rsplit_once(':').unwrap().1;
        for forged in [format!("10.0.0.1:{port}"), "127.0.0.1:22".to_string()] {
            let mut relay = dial_lane(&permits, &pool);
            relay.send(lane::open(&forged)).await.unwrap();
            assert_eq!(
                next_frame(&mut relay).await,
                Some(Frame::Reset {
                    stream: lane::LANE_STREAM,
                    reason: ResetReason::Refused
                }),
                "{forged}"
            );
        }
        assert_eq!(dialled.load(Ordering::SeqCst), 0);

        let mut relay = dial_lane(&permits, &pool);
        relay.send(lane::open(&permitted)).await.unwrap();
        let mut io = LaneIo::new(relay, None);
        io.write_all(b"hello press").await.unwrap();
        let mut back = [0u8; 11];
        tokio::time::timeout(LIMIT, io.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"hello press");
        assert_eq!(dialled.load(Ordering::SeqCst), 1);
        assert_eq!(pool.spares(), (0, 0));
    }
}
