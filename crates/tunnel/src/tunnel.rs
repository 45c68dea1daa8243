//! The async driver: runs a [`Mux`] over a message transport.
//!
//! The transport is any `Stream` of received binary messages and `Sink` of messages to
//! send, so the relay and the agent plug a WebSocket in (mapping binary messages to
//! `Bytes`) and tests use [`memory_pair`]. Two tasks drive it: a reader that feeds received
//! messages to the multiplexer, and a writer that sends what the multiplexer queued and
//! keeps the keep-alive clock. Reading and writing run apart so that a peer which is busy
//! sending can never deadlock against this side being busy sending too.
//!
//! The multiplexer sits behind a `std` mutex that is never held across an `.await`;
//! stream handles park their wakers next to it and the tasks wake them.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::frame::{GoAwayReason, ResetReason, Role, StreamId};
use crate::mux::{Event, Liveness, Mux, OpenError, ProtocolError, StreamError, TunnelConfig};

/// How long the writer keeps trying to deliver the last frames (the go-away) of a tunnel
/// that ended; a dead transport must not keep the task alive.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
/// How long a failed write waits for the reader to find the peer's own reason for ending.
const READ_GRACE: Duration = Duration::from_millis(200);

/// Why a tunnel ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error("the peer broke the tunnel protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the peer ended the tunnel: {0}")]
    GoAway(GoAwayReason),
    #[error("this side ended the tunnel: {0}")]
    Closed(GoAwayReason),
    #[error("nothing received from the peer for {silent_for:?}; the tunnel is dead")]
    PeerDead { silent_for: Duration },
    #[error("tunnel transport failed: {0}")]
    Transport(String),
    #[error("tunnel transport closed")]
    TransportClosed,
}

/// Why [`TunnelHandle::open`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenStreamError {
    #[error(transparent)]
    Rejected(#[from] OpenError),
    #[error("the tunnel has ended: {0}")]
    Ended(TunnelError),
}

struct State {
    mux: Mux,
    read_wakers: HashMap<StreamId, Waker>,
    write_wakers: HashMap<StreamId, Waker>,
    ended: Option<TunnelError>,
}

impl State {
    fn wake_reader(&mut self, id: StreamId) {
        if let Some(waker) = self.read_wakers.remove(&id) {
            waker.wake();
        }
    }

    fn wake_writer(&mut self, id: StreamId) {
        if let Some(waker) = self.write_wakers.remove(&id) {
            waker.wake();
        }
    }

    fn wake_all_writers(&mut self) {
        for (_, waker) in self.write_wakers.drain() {
            waker.wake();
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Frames were queued: the writer has work.
    outbound: Notify,
    /// Flips to true once when the tunnel ends.
    ended: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; should one, the state is still consistent
        // enough to fail every stream cleanly.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records why the tunnel ended (the first reason wins) and fails every waiting stream.
    fn end(&self, state: &mut State, error: TunnelError) {
        if state.ended.is_some() {
            return;
        }
        tracing::debug!(%error, "tunnel ended");
        state.ended = Some(error);
        for (_, waker) in state.read_wakers.drain() {
            waker.wake();
        }
        state.wake_all_writers();
        self.ended.send_replace(true);
        self.outbound.notify_one();
    }
}

/// Starts tunnels.
pub struct Tunnel;

impl Tunnel {
    /// Runs a tunnel over `transport` on the current Tokio runtime. Returns the handle to
    /// open streams with and the streams the peer opens. (`Tunnel` itself is only a name
    /// for this constructor: the running tunnel is its two tasks.)
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T, E>(transport: T, role: Role, config: TunnelConfig) -> (TunnelHandle, Incoming)
    where
        T: Stream<Item = Result<Bytes, E>> + Sink<Bytes, Error = E> + Send + 'static,
        E: Display + Send + 'static,
    {
        let now = Instant::now().into_std();
        let (ended, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mux: Mux::new(role, config, now),
                read_wakers: HashMap::new(),
                write_wakers: HashMap::new(),
                ended: None,
            }),
            outbound: Notify::new(),
            ended,
        });
        // Two tasks share the transport's connection, both on the runtime the tunnel is
        // started on: the main one, since no task that a stream's carry moves to the bulk
        // runtime starts a tunnel.
        let (sink, stream) = transport.split();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let span = tracing::debug_span!("tunnel", ?role);
        tokio::spawn(write_loop(sink, shared.clone()).instrument(span.clone()));
        tokio::spawn(read_loop(stream, shared.clone(), incoming_tx).instrument(span));
        (TunnelHandle { shared }, Incoming { rx: incoming_rx })
    }
}

async fn write_loop<S, E>(mut sink: S, shared: Arc<Shared>)
where
    S: Sink<Bytes, Error = E> + Unpin,
    E: Display,
{
    let mut ended = shared.ended.subscribe();
    // Buffers of the messages sent last round, for the next round's messages.
    let mut spares = Vec::new();
    loop {
        let (messages, next_check, finished) = {
            let mut state = shared.lock();
            let mut next_check = None;
            if state.ended.is_none() {
                match state.mux.poll_timers(Instant::now().into_std()) {
                    Liveness::Alive { next_check: at } => next_check = Some(Instant::from_std(at)),
                    Liveness::Dead { silent_for } => {
                        state.mux.go_away(GoAwayReason::KeepAliveTimeout);
                        shared.end(&mut state, TunnelError::PeerDead { silent_for });
                    }
                }
            }
            let mut messages = Vec::new();
            while let Some(message) = state.mux.poll_transmit_in(&mut spares) {
                messages.push(message);
            }
            (messages, next_check, state.ended.is_some())
        };
        let sent = if finished {
            tokio::time::timeout(FINAL_FLUSH, send_all(&mut sink, messages, &mut spares))
                .await
                .unwrap_or(Ok(()))
        } else {
            send_all(&mut sink, messages, &mut spares).await
        };
        if let Err(error) = sent {
            // A peer that says goodbye closes its side right after: its go-away may still
            // be waiting to be read, and is the better reason. The reader gets a moment to
            // find it before the failed write becomes the tunnel's end.
            if !finished {
                let _ = tokio::time::timeout(READ_GRACE, ended.wait_for(|ended| *ended)).await;
            }
            let mut state = shared.lock();
            shared.end(&mut state, TunnelError::Transport(error.to_string()));
        }
        {
            let mut state = shared.lock();
            // The queue drained: writers waiting for room may go on.
            state.wake_all_writers();
            if state.ended.is_some() && !finished {
                // Ended meanwhile: one more round sends the go-away.
                continue;
            }
        }
        if finished {
            let _ = tokio::time::timeout(FINAL_FLUSH, sink.close()).await;
            return;
        }
        let deadline = next_check.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            () = shared.outbound.notified() => {}
            // A quiet tunnel keeps no spare buffers.
            () = tokio::time::sleep_until(deadline) => spares.clear(),
            _ = ended.wait_for(|ended| *ended) => {}
        }
    }
}

/// The most message buffers a tunnel keeps for reuse (each up to `max_message`).
const MAX_SPARES: usize = 4;
/// Smaller buffers are not kept: the allocator serves them from its free lists at no cost,
/// and an idle tunnel's keep-alives would otherwise each hold one (1,000 idle endpoints
/// cost the relay 4.7 KB more each).
const SPARE_AT_LEAST: usize = 64 * 1024;

/// Sends `messages` and flushes; then the buffers the transport let go of (it copies a
/// message into its own buffer as it takes it) go to `spares`.
async fn send_all<S, E>(
    sink: &mut S,
    messages: Vec<Bytes>,
    spares: &mut Vec<BytesMut>,
) -> Result<(), E>
where
    S: Sink<Bytes, Error = E> + Unpin,
{
    if messages.is_empty() {
        return Ok(());
    }
    // Only large messages are kept an eye on: a clone is an allocation of its own, which
    // small (interactive) messages need not pay for.
    let room = MAX_SPARES.saturating_sub(spares.len());
    let mut sent = Vec::new();
    for message in messages {
        if sent.len() < room && message.len() >= SPARE_AT_LEAST {
            sent.push(message.clone());
        }
        sink.feed(message).await?;
    }
    sink.flush().await?;
    // Only a buffer nobody else holds any more; one still queued somewhere stays there.
    spares.extend(
        sent.into_iter()
            .filter_map(|message| message.try_into_mut().ok()),
    );
    Ok(())
}

async fn read_loop<R, E>(
    mut stream: R,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedSender<IncomingStream>,
) where
    R: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let mut ended = shared.ended.subscribe();
    loop {
        let received = tokio::select! {
            received = stream.next() => received,
            _ = ended.wait_for(|ended| *ended) => return,
        };
        let mut state = shared.lock();
        let message = match received {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                shared.end(&mut state, TunnelError::Transport(error.to_string()));
                return;
            }
            None => {
                shared.end(&mut state, TunnelError::TransportClosed);
                return;
            }
        };
        match state.mux.handle_message(message, Instant::now().into_std()) {
            Ok(events) => {
                for event in events {
                    dispatch(&shared, &mut state, event, &incoming);
                }
            }
            Err(error) => {
                tracing::info!(%error, "closing tunnel on a protocol error");
                state.mux.go_away(error.go_away_reason());
                shared.end(&mut state, TunnelError::Protocol(error));
                return;
            }
        }
        if state.mux.has_outbound() {
            shared.outbound.notify_one();
        }
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    state: &mut State,
    event: Event,
    incoming: &mpsc::UnboundedSender<IncomingStream>,
) {
    match event {
        Event::Opened { stream, target } => {
            let offer = IncomingStream {
                id: stream,
                target,
                shared: shared.clone(),
                decided: false,
            };
            if let Err(mpsc::error::SendError(mut offer)) = incoming.send(offer) {
                // Nobody takes incoming streams: refuse here, with the lock already held.
                offer.decided = true;
                state.mux.reset(stream, ResetReason::Refused);
            }
        }
        Event::Readable(id) => state.wake_reader(id),
        Event::Writable(id) => state.wake_writer(id),
        Event::Reset { stream, .. } => {
            state.wake_reader(stream);
            state.wake_writer(stream);
        }
        Event::GoAway(reason) => shared.end(state, TunnelError::GoAway(reason)),
    }
}

/// Opens streams and ends the tunnel. Cheap to clone.
#[derive(Clone)]
pub struct TunnelHandle {
    shared: Arc<Shared>,
}

impl TunnelHandle {
    /// Opens a stream to `target`. No round trip: the stream is writable at once, and a
    /// refusal by the peer shows as a reset on its first read or write after it arrives.
    pub fn open(&self, target: &str) -> Result<TunnelStream, OpenStreamError> {
        let mut state = self.shared.lock();
        if let Some(error) = &state.ended {
            return Err(OpenStreamError::Ended(error.clone()));
        }
        let id = state.mux.open(target)?;
        self.shared.outbound.notify_one();
        Ok(TunnelStream {
            id,
            shared: self.shared.clone(),
        })
    }

    /// Ends the tunnel, telling the peer why; every stream fails.
    pub fn close(&self, reason: GoAwayReason) {
        let mut state = self.shared.lock();
        state.mux.go_away(reason);
        self.shared.end(&mut state, TunnelError::Closed(reason));
    }

    /// Waits until the tunnel ends, and says why.
    pub async fn closed(&self) -> TunnelError {
        let mut ended = self.shared.ended.subscribe();
        let _ = ended.wait_for(|ended| *ended).await;
        self.error().unwrap_or(TunnelError::TransportClosed)
    }

    /// Why the tunnel ended, if it did.
    pub fn error(&self) -> Option<TunnelError> {
        self.shared.lock().ended.clone()
    }

    /// The peer's role, once its hello arrived.
    pub fn peer_role(&self) -> Option<Role> {
        self.shared.lock().mux.peer().map(|hello| hello.role)
    }

    /// Streams open right now.
    pub fn stream_count(&self) -> usize {
        self.shared.lock().mux.stream_count()
    }
}

/// The streams the peer opens, in order. Ends when the tunnel ends.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<IncomingStream>,
}

impl Incoming {
    pub async fn next(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await
    }
}

/// A stream the peer opened, waiting for this side's policy decision. Dropping it refuses.
pub struct IncomingStream {
    id: StreamId,
    target: String,
    shared: Arc<Shared>,
    decided: bool,
}

impl IncomingStream {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// What the peer asks to reach (`mapping:3`, `host:port`); check it against policy.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn accept(mut self) -> TunnelStream {
        self.decided = true;
        self.shared.lock().mux.accept(self.id);
        self.shared.outbound.notify_one();
        TunnelStream {
            id: self.id,
            shared: self.shared.clone(),
        }
    }

    /// Refuses the stream; the opener sees a reset with `reason`.
    pub fn refuse(mut self, reason: ResetReason) {
        self.decided = true;
        self.shared.lock().mux.reset(self.id, reason);
        self.shared.outbound.notify_one();
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if !self.decided {
            self.shared.lock().mux.reset(self.id, ResetReason::Refused);
            self.shared.outbound.notify_one();
        }
    }
}

/// One stream of a tunnel: bytes both ways with flow control. `shutdown` half-closes it;
/// dropping it before both sides closed aborts it.
pub struct TunnelStream {
    id: StreamId,
    shared: Arc<Shared>,
}

/// A stream's error as the `io::Error` its reader or writer sees (lanes use it too).
pub(crate) fn stream_error(error: StreamError) -> io::Error {
    let kind = match error {
        StreamError::Reset(ResetReason::Refused) => io::ErrorKind::ConnectionRefused,
        StreamError::Reset(_) => io::ErrorKind::ConnectionReset,
        StreamError::WriteClosed => io::ErrorKind::BrokenPipe,
        StreamError::Unknown => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, error)
}

fn tunnel_error(error: &TunnelError) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, error.clone())
}

impl TunnelStream {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Reads the next received piece of at most `max` bytes (at least 1) without copying
    /// it: a slice of the message it arrived in. Empty at the end of the stream.
    pub fn poll_read_bytes(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        self.poll_read_with(cx, |mux| mux.read_bytes(self.id, max))
    }

    /// Queues up to all of `data`, sharing its buffer; returns how many bytes were taken.
    pub fn poll_write_bytes(&self, cx: &mut Context<'_>, data: &Bytes) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, data.len(), |mux| mux.write_bytes(self.id, data))
    }

    fn poll_read_with<T>(
        &self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&mut Mux) -> Result<Option<T>, StreamError>,
    ) -> Poll<io::Result<T>> {
        let mut state = self.shared.lock();
        match read(&mut state.mux) {
            Ok(Some(read)) => {
                // Reading may have granted the peer credit.
                if state.mux.has_outbound() {
                    self.shared.outbound.notify_one();
                }
                Poll::Ready(Ok(read))
            }
            Ok(None) => match &state.ended {
                Some(error) => Poll::Ready(Err(tunnel_error(error))),
                None => {
                    state.read_wakers.insert(self.id, cx.waker().clone());
                    Poll::Pending
                }
            },
            Err(error) => Poll::Ready(Err(stream_error(error))),
        }
    }

    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        write: impl FnOnce(&mut Mux) -> Result<usize, StreamError>,
    ) -> Poll<io::Result<usize>> {
        let mut state = self.shared.lock();
        if let Some(error) = &state.ended {
            return Poll::Ready(Err(tunnel_error(error)));
        }
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        match write(&mut state.mux) {
            Ok(0) => {
                state.write_wakers.insert(self.id, cx.waker().clone());
                Poll::Pending
            }
            Ok(n) => {
                self.shared.outbound.notify_one();
                Poll::Ready(Ok(n))
            }
            Err(error) => Poll::Ready(Err(stream_error(error))),
        }
    }

    /// Half-closes the stream: the peer reads its end once what was written is sent.
    pub fn close(&self) -> io::Result<()> {
        self.end_direction(Mux::close)
    }

    /// Ends this side's direction on the tunnel with a `Moved` once what was written is
    /// sent: the rest follows on a lane (`crate::lane`, moving a stream).
    pub fn move_away(&self) -> io::Result<()> {
        self.end_direction(Mux::move_away)
    }

    /// After the end of the stream was read: whether the peer moved its direction to a
    /// lane (`Moved`) rather than closing it.
    pub fn moved_in(&self) -> bool {
        self.shared.lock().mux.moved_in(self.id)
    }

    fn end_direction(
        &self,
        end: impl FnOnce(&mut Mux, StreamId) -> Result<(), StreamError>,
    ) -> io::Result<()> {
        let mut state = self.shared.lock();
        if let Some(error) = &state.ended {
            return Err(tunnel_error(error));
        }
        let ended = end(&mut state.mux, self.id).map_err(stream_error);
        self.shared.outbound.notify_one();
        ended
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = self.poll_read_with(cx, |mux| mux.read(self.id, buf.initialize_unfilled()));
        read.map_ok(|n| buf.advance(n))
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, buf.len(), |mux| mux.write(self.id, buf))
    }

    /// Data handed to the tunnel is sent in order; there is nothing to flush per stream.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.close())
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.mux.release(self.id);
        state.read_wakers.remove(&self.id);
        state.write_wakers.remove(&self.id);
        self.shared.outbound.notify_one();
    }
}

/// The in-memory transport's error: the other end is gone.
#[derive(Debug, thiserror::Error)]
#[error("the other end of the in-memory transport is gone")]
pub struct MemoryClosed;

type Reserve = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Bytes>, mpsc::error::SendError<()>>> + Send>,
>;

/// One end of an in-memory message transport, for tests of the relay, the agent and
/// this crate: a bounded channel each way, so back-pressure is real.
pub struct MemoryTransport {
    rx: mpsc::Receiver<Bytes>,
    tx: Option<mpsc::Sender<Bytes>>,
    reserving: Option<Reserve>,
    permit: Option<mpsc::OwnedPermit<Bytes>>,
}

/// Two connected in-memory transports holding up to `capacity` messages each way.
pub fn memory_pair(capacity: usize) -> (MemoryTransport, MemoryTransport) {
    let (a_tx, a_rx) = mpsc::channel(capacity.max(1));
    let (b_tx, b_rx) = mpsc::channel(capacity.max(1));
    let end = |tx, rx| MemoryTransport {
        rx,
        tx: Some(tx),
        reserving: None,
        permit: None,
    };
    (end(a_tx, b_rx), end(b_tx, a_rx))
}

impl Stream for MemoryTransport {
    type Item = Result<Bytes, MemoryClosed>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|message| message.map(Ok))
    }
}

impl Sink<Bytes> for MemoryTransport {
    type Error = MemoryClosed;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), MemoryClosed>> {
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        if self.reserving.is_none() {
            let tx = self.tx.clone().ok_or(MemoryClosed)?;
            self.reserving = Some(Box::pin(tx.reserve_owned()));
        }
        let Some(reserving) = self.reserving.as_mut() else {
            return Poll::Ready(Err(MemoryClosed));
        };
        let reserved = std::task::ready!(reserving.as_mut().poll(cx));
        self.reserving = None;
        self.permit = Some(reserved.map_err(|_| MemoryClosed)?);
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), MemoryClosed> {
        let permit = self.permit.take().ok_or(MemoryClosed)?;
        permit.send(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), MemoryClosed>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<(), MemoryClosed>> {
        self.tx = None;
        self.reserving = None;
        self.permit = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests;
