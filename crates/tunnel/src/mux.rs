//! The stream multiplexer, without I/O: frames in, frames out, time passed in.
//!
//! Flow control is per stream and credit based: a side sends on a stream only as many
//! bytes as the peer granted, so a reader that stops reading stops only its own stream,
//! and what a side buffers for a stream is bounded by the window it granted. A newly opened
//! stream starts with [`INITIAL_WINDOW`] of credit each way without asking, so an `Open`
//! is followed by data at once: opening costs no round trip.
//!
//! Outgoing frames wait in a priority queue for frames that must not wait behind bulk data
//! (credit grants, pings, resets), and in one ordered queue per stream for its `Open`,
//! `Data` and `Close`, whose order within the stream matters. The streams take turns, a
//! frame each, so an interactive stream's bytes leave after at most one frame of a bulk
//! stream beside it, not after everything the bulk stream queued. Each stream queues at most
//! [`TunnelConfig::outbound_limit`] bytes of data, and all together at most four times that;
//! a stream with nothing queued may always queue one frame, so a busy tunnel never makes a
//! quiet stream wait for room.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

pub use crate::config::TunnelConfig;
use crate::frame::{
    decode_message, is_valid_target, DecodeError, Frame, GoAwayReason, Hello, ResetReason, Role,
    StreamId, MAX_WINDOW, MIN_MAX_FRAME, PROTOCOL_VERSION,
};

/// What a stream with nothing queued may always queue, however full the queue is: enough
/// for keystrokes and small requests.
const QUIET_FRAME: usize = 16 * 1024;
/// Room made in a message beyond the queued data, for frame headers and control frames.
const MESSAGE_SLACK: usize = 4 * 1024;

/// The credit each side has on a new stream before any `Window` frame: the opener may send
/// this much right after `Open`, and the receiver of an `Open` must accept it.
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// A spare buffer with room for `likely` bytes and not far beyond, if there is one. Those
/// looked at that do not fit are let go: a keep-alive after a bulk transfer must not keep
/// its buffers alive.
fn take_spare(spares: &mut Vec<BytesMut>, likely: usize) -> Option<BytesMut> {
    while let Some(mut spare) = spares.pop() {
        if spare.capacity() >= likely && spare.capacity() <= 4 * likely {
            spare.clear();
            return Some(spare);
        }
    }
    None
}

/// What happened to the streams after a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream; accept or refuse it.
    Opened { stream: StreamId, target: String },
    /// Data or end of stream arrived.
    Readable(StreamId),
    /// The stream got credit.
    Writable(StreamId),
    /// The peer aborted the stream.
    Reset {
        stream: StreamId,
        reason: ResetReason,
    },
    /// The peer ends the tunnel.
    GoAway(GoAwayReason),
}

/// The peer broke the protocol; the tunnel ends with a go-away.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the peer's first frame was not a hello")]
    HelloExpected,
    #[error("the peer sent a second hello")]
    DuplicateHello,
    #[error("the peer speaks protocol version {0}, this side {PROTOCOL_VERSION}")]
    UnsupportedVersion(u16),
    #[error("the peer's role {peer:?} opens the same stream ids as this side's {ours:?}")]
    RoleConflict { ours: Role, peer: Role },
    #[error("the peer opened stream {0}, an id of this side's")]
    WrongParity(StreamId),
    #[error("the peer opened stream {0} again or out of order")]
    DuplicateOpen(StreamId),
    #[error("frame for stream {0}, which was never opened")]
    UnknownStream(StreamId),
    #[error("the peer sent beyond its credit on stream {0}")]
    FlowControl(StreamId),
    #[error("data on stream {0} after the peer closed it")]
    DataAfterClose(StreamId),
    #[error("credit on stream {0} grew beyond the maximum window")]
    WindowOverflow(StreamId),
}

impl ProtocolError {
    /// The reason to tell the peer in the go-away.
    pub fn go_away_reason(&self) -> GoAwayReason {
        match self {
            ProtocolError::UnsupportedVersion(_) => GoAwayReason::UnsupportedVersion,
            _ => GoAwayReason::ProtocolError,
        }
    }
}

/// Why a stream operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("stream reset: {0:?}")]
    Reset(ResetReason),
    #[error("stream already closed for writing")]
    WriteClosed,
    #[error("no such stream")]
    Unknown,
}

/// Why a stream could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("target is empty, too long or not printable")]
    BadTarget,
    #[error("too many open streams")]
    TooManyStreams,
    #[error("the tunnel is going away")]
    GoingAway,
    #[error("stream ids exhausted; reconnect")]
    IdsExhausted,
}

/// The keep-alive verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Alive; call again at this instant at the latest.
    Alive { next_check: Instant },
    /// Nothing arrived for this long.
    Dead { silent_for: Duration },
}

#[derive(Debug)]
struct StreamState {
    /// Bytes this side may still send.
    send_credit: u64,
    /// Bytes the peer may still send before the next grant.
    recv_window: u32,
    /// Bytes read by the application and not yet granted back.
    recv_unacked: u32,
    recv_buf: VecDeque<Bytes>,
    local_closed: bool,
    remote_closed: bool,
    /// The peer's end of its direction was a `Moved`: the rest comes on a lane.
    remote_moved: bool,
    reset: Option<ResetReason>,
}

impl StreamState {
    fn new(send_credit: u32, recv_window: u32) -> Self {
        StreamState {
            send_credit: u64::from(send_credit),
            recv_window,
            recv_unacked: 0,
            recv_buf: VecDeque::new(),
            local_closed: false,
            remote_closed: false,
            remote_moved: false,
            reset: None,
        }
    }
}

/// A stream's outgoing frames, in order, and how many data bytes they carry.
#[derive(Debug, Default)]
struct StreamQueue {
    frames: VecDeque<Frame>,
    data: usize,
}

/// One side of a tunnel's multiplexer.
#[derive(Debug)]
pub struct Mux {
    role: Role,
    config: TunnelConfig,
    streams: HashMap<StreamId, StreamState>,
    next_local: Option<StreamId>,
    highest_remote: StreamId,
    peer: Option<Hello>,
    priority_out: VecDeque<Frame>,
    /// Each stream's frames in order, and its queued data bytes.
    stream_out: HashMap<StreamId, StreamQueue>,
    /// Streams with frames queued, in the order they take turns.
    turns: VecDeque<StreamId>,
    /// The go-away, sent once every stream's queue is empty.
    go_away_out: Option<Frame>,
    queued_data: usize,
    last_received: Instant,
    last_ping: Instant,
    ping_nonce: u64,
    going_away: bool,
}

impl Mux {
    /// A multiplexer whose hello is already queued.
    pub fn new(role: Role, config: TunnelConfig, now: Instant) -> Self {
        let config = config.clamped();
        let hello = Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role,
            max_frame: config.max_frame,
            keep_alive_ms: u32::try_from(config.keep_alive.as_millis())
                .unwrap_or(u32::MAX)
                .clamp(1, crate::frame::MAX_KEEP_ALIVE_MS),
        });
        Mux {
            role,
            config,
            streams: HashMap::new(),
            next_local: Some(role.first_stream_id()),
            highest_remote: 0,
            peer: None,
            priority_out: VecDeque::from([hello]),
            stream_out: HashMap::new(),
            turns: VecDeque::new(),
            go_away_out: None,
            queued_data: 0,
            last_received: now,
            last_ping: now,
            ping_nonce: 0,
            going_away: false,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's hello, once it arrived.
    pub fn peer(&self) -> Option<Hello> {
        self.peer
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Opens a stream; its `Open` is queued and data may follow at once.
    pub fn open(&mut self, target: &str) -> Result<StreamId, OpenError> {
        if self.going_away {
            return Err(OpenError::GoingAway);
        }
        if !is_valid_target(target) {
            return Err(OpenError::BadTarget);
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(OpenError::TooManyStreams);
        }
        let id = self.next_local.ok_or(OpenError::IdsExhausted)?;
        self.next_local = id.checked_add(2);
        self.streams.insert(
            id,
            StreamState::new(INITIAL_WINDOW, self.config.receive_window),
        );
        self.queue(Frame::Open {
            stream: id,
            target: target.to_owned(),
            window: self.config.receive_window,
        });
        Ok(id)
    }

    /// Accepts a stream the peer opened: grants it the configured receive window.
    pub fn accept(&mut self, id: StreamId) {
        let extra = self.config.receive_window - INITIAL_WINDOW;
        if let Some(stream) = self.streams.get_mut(&id) {
            if extra > 0 && stream.reset.is_none() {
                stream.recv_window += extra;
                self.priority_out.push_back(Frame::Window {
                    stream: id,
                    credit: extra,
                });
            }
        }
    }

    /// Aborts a stream (also how an incoming open is refused) and forgets it.
    pub fn reset(&mut self, id: StreamId, reason: ResetReason) {
        if let Some(stream) = self.streams.remove(&id) {
            // A stream whose open was never sent vanishes without a trace; the peer
            // would not know the id a reset names.
            let open_was_queued = self.drop_queued_frames(id);
            if stream.reset.is_none() && !open_was_queued {
                self.priority_out
                    .push_back(Frame::Reset { stream: id, reason });
            }
        }
    }

    /// Queues up to `data.len()` bytes; returns how many were taken, 0 when the stream has
    /// no credit or the outgoing queue is full (wait for [`Event::Writable`] or a flush).
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        let total = self.take_send_room(id, data.len())?;
        self.queue_data(id, total, |range| Bytes::copy_from_slice(&data[range]));
        Ok(total)
    }

    /// [`Mux::write`] for bytes the caller already holds as [`Bytes`]: the queued frames
    /// share `data`'s buffer instead of copying it (a relay between two tunnel streams
    /// passes what it received as it came).
    pub fn write_bytes(&mut self, id: StreamId, data: &Bytes) -> Result<usize, StreamError> {
        let total = self.take_send_room(id, data.len())?;
        self.queue_data(id, total, |range| data.slice(range));
        Ok(total)
    }

    /// How many of `wanted` bytes the stream may queue now, within its credit and the
    /// outgoing limits; the credit for them is spent.
    fn take_send_room(&mut self, id: StreamId, wanted: usize) -> Result<usize, StreamError> {
        let max_send_frame = self.max_send_frame();
        let own = self.stream_out.get(&id).map_or(0, |q| q.data);
        let total_limit = 4 * self.config.outbound_limit;
        let room = if own == 0 {
            // A quiet stream may queue a small frame however busy the others are; small, and
            // only up to twice the total, so that a peer opening many streams and reading
            // none cannot make this side hold more than that.
            let quiet = QUIET_FRAME.min(max_send_frame);
            let fair = self.config.outbound_limit.saturating_sub(self.queued_data);
            if self.queued_data < 2 * total_limit {
                quiet.max(fair)
            } else {
                0
            }
        } else {
            let total_room = total_limit.saturating_sub(self.queued_data);
            self.config
                .outbound_limit
                .saturating_sub(own)
                .min(total_room)
        };
        let stream = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some(reason) = stream.reset {
            return Err(StreamError::Reset(reason));
        }
        if stream.local_closed {
            return Err(StreamError::WriteClosed);
        }
        let credit = usize::try_from(stream.send_credit).unwrap_or(usize::MAX);
        let total = wanted.min(credit).min(room);
        stream.send_credit -= total as u64;
        Ok(total)
    }

    /// Queues the first `total` bytes of a write as `Data` frames no larger than the peer
    /// accepts, each made by `piece` from its range of the written bytes.
    fn queue_data(
        &mut self,
        id: StreamId,
        total: usize,
        piece: impl Fn(std::ops::Range<usize>) -> Bytes,
    ) {
        let max_send_frame = self.max_send_frame();
        for start in (0..total).step_by(max_send_frame) {
            let end = (start + max_send_frame).min(total);
            self.queue(Frame::Data {
                stream: id,
                payload: piece(start..end),
            });
        }
    }

    /// The largest `Data` payload the peer accepts (the smallest any peer may declare until
    /// its hello arrives).
    fn max_send_frame(&self) -> usize {
        self.peer.map_or(MIN_MAX_FRAME, |peer| peer.max_frame) as usize
    }

    /// Reads buffered data: `Some(n)` bytes (0 at the end of the stream), `None` when
    /// nothing is there yet. Grants credit back once half the window is consumed.
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<Option<usize>, StreamError> {
        let stream = self.readable_stream(id)?;
        let mut copied = 0;
        while copied < buf.len() {
            let Some(front) = stream.recv_buf.front_mut() else {
                break;
            };
            let n = front.len().min(buf.len() - copied);
            buf[copied..copied + n].copy_from_slice(&front.split_to(n));
            copied += n;
            if front.is_empty() {
                stream.recv_buf.pop_front();
            }
        }
        if copied == 0 {
            let ended = stream.remote_closed || buf.is_empty();
            return Ok(ended.then_some(0));
        }
        self.consumed(id, copied);
        Ok(Some(copied))
    }

    /// [`Mux::read`] without a copy: the next received piece of at most `max` bytes (at
    /// least 1), as a slice of the message it arrived in; empty at the end of the stream,
    /// `None` when nothing is there yet. (A buffered piece is never empty: the decoder
    /// refuses empty `Data` frames, so an empty piece always means the end.)
    pub fn read_bytes(&mut self, id: StreamId, max: usize) -> Result<Option<Bytes>, StreamError> {
        debug_assert!(
            max > 0,
            "a read of 0 bytes would look like the end of the stream"
        );
        let stream = self.readable_stream(id)?;
        let piece = match stream.recv_buf.front_mut() {
            Some(front) if front.len() > max => front.split_to(max),
            Some(_) => stream.recv_buf.pop_front().unwrap_or_default(),
            None if stream.remote_closed => return Ok(Some(Bytes::new())),
            None => return Ok(None),
        };
        self.consumed(id, piece.len());
        Ok(Some(piece))
    }

    fn readable_stream(&mut self, id: StreamId) -> Result<&mut StreamState, StreamError> {
        let stream = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        match stream.reset {
            Some(reason) => Err(StreamError::Reset(reason)),
            None => Ok(stream),
        }
    }

    /// The application took `n` bytes of the stream: once half the window is taken, the
    /// peer gets that much credit back.
    fn consumed(&mut self, id: StreamId, n: usize) {
        let half_window = self.config.receive_window / 2;
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.recv_unacked += n as u32;
        if stream.recv_unacked >= half_window && !stream.remote_closed {
            let credit = std::mem::take(&mut stream.recv_unacked);
            stream.recv_window += credit;
            self.priority_out
                .push_back(Frame::Window { stream: id, credit });
        }
    }

    /// Half close: no more data from this side on the stream.
    pub fn close(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.end_direction(id, Frame::Close { stream: id })
    }

    /// No more data from this side on the stream *on this tunnel*: a `Moved` follows what is
    /// queued, and the rest of this direction goes on a lane. For the tunnel it is a half
    /// close; the stream is forgotten cleanly once both directions ended either way.
    pub fn move_away(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.end_direction(id, Frame::Moved { stream: id })
    }

    /// Whether the peer's direction of the stream ended with a `Moved` (it goes on on a
    /// lane) rather than a `Close`.
    pub fn moved_in(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_some_and(|s| s.remote_moved)
    }

    fn end_direction(&mut self, id: StreamId, end: Frame) -> Result<(), StreamError> {
        let stream = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some(reason) = stream.reset {
            return Err(StreamError::Reset(reason));
        }
        if !stream.local_closed {
            stream.local_closed = true;
            self.queue(end);
        }
        Ok(())
    }

    /// The application let go of the stream: forget it, aborting it unless both sides
    /// closed it cleanly.
    pub fn release(&mut self, id: StreamId) {
        let clean = self.streams.get(&id).is_some_and(|stream| {
            stream.reset.is_some() || (stream.local_closed && stream.remote_closed)
        });
        if clean {
            self.streams.remove(&id);
        } else {
            self.reset(id, ResetReason::Cancelled);
        }
    }

    /// Ends the tunnel: no more opens, and a go-away after what is already queued.
    pub fn go_away(&mut self, reason: GoAwayReason) {
        if !self.going_away {
            self.going_away = true;
            self.go_away_out = Some(Frame::GoAway { reason });
        }
    }

    /// Whether frames wait to be sent.
    pub fn has_outbound(&self) -> bool {
        !self.priority_out.is_empty() || !self.turns.is_empty() || self.go_away_out.is_some()
    }

    /// Bytes of data queued and not yet handed to the transport.
    pub fn queued_data(&self) -> usize {
        self.queued_data
    }

    /// The next message to send: priority frames first, then the streams' frames, a frame
    /// per stream in turn, then the go-away; packed up to the configured message size (a
    /// message always holds at least one frame).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.poll_transmit_in(&mut Vec::new())
    }

    /// [`Mux::poll_transmit`], writing the message into one of `spares` (buffers of messages
    /// already sent) when one fits. A message buffer is up to `max_message` (256 KiB): freed
    /// and allocated anew for every message, the system allocator hands such a buffer back
    /// to the kernel and faults it in again, page by page, for the next one.
    pub fn poll_transmit_in(&mut self, spares: &mut Vec<BytesMut>) -> Option<Bytes> {
        let first = self.next_frame_len()?;
        // One allocation for the whole message, not one per doubling: the data queued and
        // some room for the frames' headers and the control frames among them.
        let likely = (self.queued_data + MESSAGE_SLACK)
            .min(self.config.max_message)
            .max(first);
        let mut out = take_spare(spares, likely).unwrap_or_else(|| BytesMut::with_capacity(likely));
        while let Some(len) = self.next_frame_len() {
            if !out.is_empty() && out.len() + len > self.config.max_message {
                break;
            }
            let Some(frame) = self.pop_frame() else {
                break;
            };
            frame.encode(&mut out);
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The encoded length of the frame [`Mux::pop_frame`] would return.
    fn next_frame_len(&self) -> Option<usize> {
        let next = match self.priority_out.front() {
            Some(frame) => Some(frame),
            None => match self.turns.front() {
                Some(id) => self.stream_out.get(id).and_then(|q| q.frames.front()),
                None => self.go_away_out.as_ref(),
            },
        };
        next.map(Frame::encoded_len)
    }

    /// Takes the next frame to send: a priority frame, else the front of the stream whose
    /// turn it is (which then goes to the back of the line), else the go-away.
    fn pop_frame(&mut self) -> Option<Frame> {
        if let Some(frame) = self.priority_out.pop_front() {
            return Some(frame);
        }
        let Some(id) = self.turns.pop_front() else {
            return self.go_away_out.take();
        };
        let queue = self.stream_out.get_mut(&id)?;
        let frame = queue.frames.pop_front()?;
        if let Frame::Data { payload, .. } = &frame {
            queue.data -= payload.len();
            self.queued_data -= payload.len();
        }
        if queue.frames.is_empty() {
            self.stream_out.remove(&id);
        } else {
            self.turns.push_back(id);
        }
        Some(frame)
    }

    /// Queues one of a stream's ordered frames (`Open`, `Data`, `Close` or `Moved`).
    fn queue(&mut self, frame: Frame) {
        let id = frame.stream();
        let data = match &frame {
            Frame::Data { payload, .. } => payload.len(),
            _ => 0,
        };
        let queue = self.stream_out.entry(id).or_default();
        if queue.frames.is_empty() {
            self.turns.push_back(id);
        }
        queue.frames.push_back(frame);
        queue.data += data;
        self.queued_data += data;
    }

    /// Keep-alive bookkeeping: queues a ping when one is due and says whether the peer is
    /// still alive.
    pub fn poll_timers(&mut self, now: Instant) -> Liveness {
        let silent_for = now.saturating_duration_since(self.last_received);
        if silent_for >= self.config.dead_after {
            return Liveness::Dead { silent_for };
        }
        let interval = self.ping_interval();
        if now.saturating_duration_since(self.last_ping) >= interval {
            self.last_ping = now;
            self.ping_nonce = self.ping_nonce.wrapping_add(1);
            self.priority_out.push_back(Frame::Ping {
                nonce: self.ping_nonce,
            });
        }
        Liveness::Alive {
            next_check: (self.last_ping + interval)
                .min(self.last_received + self.config.dead_after),
        }
    }

    /// Pings at least as often as either side asked, so neither declares the other dead.
    fn ping_interval(&self) -> Duration {
        let peer = self.peer.map_or(self.config.keep_alive, |peer| {
            Duration::from_millis(u64::from(peer.keep_alive_ms))
        });
        self.config.keep_alive.min(peer)
    }

    /// Handles one received message.
    pub fn handle_message(
        &mut self,
        message: Bytes,
        now: Instant,
    ) -> Result<Vec<Event>, ProtocolError> {
        self.last_received = now;
        let frames = decode_message(message, self.config.max_frame)?;
        let mut events = Vec::new();
        for frame in frames {
            self.handle_frame(frame, &mut events)?;
        }
        Ok(events)
    }

    fn handle_frame(&mut self, frame: Frame, events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        let hello = match (&frame, self.peer) {
            (Frame::Hello(hello), None) => *hello,
            (Frame::Hello(_), Some(_)) => return Err(ProtocolError::DuplicateHello),
            (_, None) => return Err(ProtocolError::HelloExpected),
            (_, Some(hello)) => hello,
        };
        match frame {
            Frame::Hello(_) => {
                if hello.version != PROTOCOL_VERSION {
                    return Err(ProtocolError::UnsupportedVersion(hello.version));
                }
                if hello.role.first_stream_id() == self.role.first_stream_id() {
                    return Err(ProtocolError::RoleConflict {
                        ours: self.role,
                        peer: hello.role,
                    });
                }
                self.peer = Some(hello);
            }
            Frame::Open {
                stream,
                target,
                window,
            } => self.on_open(stream, target, window, events)?,
            Frame::Data { stream, payload } => {
                let Some(state) = self.live_stream(stream)? else {
                    return Ok(());
                };
                if state.remote_closed {
                    return Err(ProtocolError::DataAfterClose(stream));
                }
                let len = payload.len() as u32;
                if len > state.recv_window {
                    return Err(ProtocolError::FlowControl(stream));
                }
                state.recv_window -= len;
                state.recv_buf.push_back(payload);
                events.push(Event::Readable(stream));
            }
            Frame::Window { stream, credit } => {
                let Some(state) = self.live_stream(stream)? else {
                    return Ok(());
                };
                state.send_credit += u64::from(credit);
                if state.send_credit > u64::from(MAX_WINDOW) {
                    return Err(ProtocolError::WindowOverflow(stream));
                }
                events.push(Event::Writable(stream));
            }
            Frame::Close { stream } | Frame::Moved { stream } => {
                let moved = matches!(frame, Frame::Moved { .. });
                let Some(state) = self.live_stream(stream)? else {
                    return Ok(());
                };
                // Whichever end came first counts.
                if !state.remote_closed {
                    state.remote_closed = true;
                    state.remote_moved = moved;
                }
                events.push(Event::Readable(stream));
            }
            Frame::Reset { stream, reason } => {
                let Some(state) = self.live_stream(stream)? else {
                    return Ok(());
                };
                state.reset = Some(reason);
                state.recv_buf.clear();
                self.drop_queued_frames(stream);
                events.push(Event::Reset { stream, reason });
            }
            Frame::Ping { nonce } => self.priority_out.push_back(Frame::Pong { nonce }),
            // Any frame proves the peer alive; a pong needs no more than that.
            Frame::Pong { .. } => {}
            Frame::GoAway { reason } => {
                self.going_away = true;
                events.push(Event::GoAway(reason));
            }
        }
        Ok(())
    }

    fn on_open(
        &mut self,
        stream: StreamId,
        target: String,
        window: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        if self.role.opens(stream) {
            return Err(ProtocolError::WrongParity(stream));
        }
        if stream <= self.highest_remote {
            return Err(ProtocolError::DuplicateOpen(stream));
        }
        self.highest_remote = stream;
        if self.going_away {
            self.priority_out.push_back(Frame::Reset {
                stream,
                reason: ResetReason::Shutdown,
            });
        } else if self.streams.len() >= self.config.max_streams {
            self.priority_out.push_back(Frame::Reset {
                stream,
                reason: ResetReason::TooManyStreams,
            });
        } else {
            self.streams
                .insert(stream, StreamState::new(window, INITIAL_WINDOW));
            events.push(Event::Opened { stream, target });
        }
        Ok(())
    }

    /// The state of a stream a frame names: `None` for a stream that existed and is gone
    /// or reset (frames in flight when it ended are dropped), an error for one that never
    /// existed.
    fn live_stream(&mut self, id: StreamId) -> Result<Option<&mut StreamState>, ProtocolError> {
        let existed = if self.role.opens(id) {
            self.next_local.is_none_or(|next| id < next)
        } else {
            id <= self.highest_remote
        };
        if !existed {
            return Err(ProtocolError::UnknownStream(id));
        }
        Ok(self
            .streams
            .get_mut(&id)
            .filter(|state| state.reset.is_none()))
    }

    /// Drops the stream's queued frames; says whether its `Open` was among them.
    fn drop_queued_frames(&mut self, id: StreamId) -> bool {
        let Some(queue) = self.stream_out.remove(&id) else {
            return false;
        };
        self.turns.retain(|turn| *turn != id);
        self.queued_data -= queue.data;
        queue
            .frames
            .iter()
            .any(|frame| matches!(frame, Frame::Open { .. }))
    }
}

#[cfg(test)]
mod tests;
