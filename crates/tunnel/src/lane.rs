//! Lanes: one stream on a WebSocket of its own, beside the multiplexed tunnel.
//!
//! A stream on the tunnel shares one TCP connection with every other stream of the
//! endpoint: a keystroke waits behind the bulk bytes in the sockets' buffers, and the
//! per-stream window bounds a single stream's throughput. A lane is a second WebSocket
//! (`/mts/lane/open` or `/mts/lane/dial`, same token) that carries exactly one stream, so
//! TCP's own flow control does the work of the window and streams never queue behind each
//! other. Agents keep a few lanes open *before* they are needed (spares), so a stream that
//! takes one starts at once, without an extra round trip; with no spare at hand a stream
//! opens on the tunnel as before.
//!
//! A lane's connection is a WebSocket, or, where the relay offers it, an HTTP upgrade to
//! [`framed::PROTOCOL`] that carries the same frames without WebSocket framing ([`framed`]).
//! Either way, every lane message is exactly one frame of [`crate::frame`] for stream
//! [`LANE_STREAM`]:
//! - the side that starts the stream sends `Open` (the agent on an *open* lane, with the
//!   session target; the relay on a *dial* lane, with `host:port`), then `Data`;
//! - `Close` ends one direction (half close), `Reset` ends both with a reason (a refused
//!   dial answers its `Open` with `Reset(refused)`);
//! - `Ping` keeps a quiet lane's connection alive through proxies and NAT; it needs no
//!   answer and carries nothing (the tunnel's keep-alive is what detects dead peers);
//! - no `Hello`, `Window` or `GoAway`: they are refused as protocol errors.
//!
//! **Moving a stream.** A stream that started on the tunnel (no spare lane at hand) moves
//! to a lane once one is: the side that opened it sends `Moved` naming the tunnel stream as
//! the lane's first frame, instead of `Open`. Each side then ends its direction on the
//! tunnel with `Moved` and writes the rest on the lane, and reads the tunnel up to the
//! peer's `Moved`, then the lane ([`crate::carry::join_tcp_moving`], the relay's joins).
//! The other side keeps a place for the lane ([`board`]). Only between peers that said
//! they move streams ([`MOVES_OFFERED`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Sink, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::frame::{DecodeError, Frame, ResetReason, StreamId, HEADER_LEN};
use crate::mux::StreamError;
use crate::tunnel::stream_error;

pub mod board;
pub mod framed;

/// The one stream id of a lane.
pub const LANE_STREAM: StreamId = 1;
/// The largest `Data` payload on a lane, both ways.
pub const LANE_MAX_FRAME: u32 = 256 * 1024;
/// The size bytes are copied in to and from lanes, so the `Data` frames senders write.
/// Smaller than the largest accepted frame on purpose: the WebSocket library zeroes the
/// unread part of a frame's buffer, up to its read buffer's size, at every socket read, so
/// up to that size its cost grows with the square of the frame size (256 KiB frames spent a
/// tenth of the relay's time zeroing; 16, 32 and 64 KiB measured alike, `bench/tunnel`).
pub const LANE_PIECE: usize = 32 * 1024;
/// How long an unused spare lane is kept: the agent replaces its open lanes before this,
/// and the relay ends its idle dial lanes at this age, so that neither side ever starts a
/// stream on a lane the other is about to close, and no lane idles long enough for a
/// proxy or firewall to drop it silently.
pub const SPARE_LIFETIME: Duration = Duration::from_secs(30);
/// How often a lane pings while its reader waits, by default (the tunnel's keep-alive).
pub const LANE_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long a side that read a stream's `Moved` on the tunnel waits for the lane that
/// takes the stream over, before it gives the stream up. The lane is sent before the
/// `Moved`, so it is late only when its connection is lost.
pub const MOVE_WAIT: Duration = SPARE_LIFETIME;

/// The header by which an agent (on its tunnel's request) and the relay (on its `101`)
/// say they move streams from the tunnel to lanes (value `1`). Each side starts a move
/// only where the other said so.
pub const MOVES_OFFERED: &str = "portico-lane-moves";

/// The header of the tunnel's `101` answer by which a relay offers lanes (value `1`). An
/// agent opens lanes only to a relay that offers them: a relay from before lanes would take
/// a lane's WebSocket for a second tunnel of the endpoint and close the first.
pub const LANES_OFFERED: &str = "portico-lanes";

/// What a lane's user may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneUse {
    /// The agent opens streams on it (it listens for the session).
    Open,
    /// The relay asks the agent to dial on it (the agent holds a permit).
    Dial,
}

impl LaneUse {
    /// The path of the WebSocket that carries such a lane.
    pub fn path(self) -> &'static str {
        match self {
            LaneUse::Open => "/mts/lane/open",
            LaneUse::Dial => "/mts/lane/dial",
        }
    }
}

/// Why a lane message is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a lane message carries exactly one frame")]
    TrailingBytes,
    #[error("a lane carries stream 1 only")]
    WrongStream,
    #[error("{0} frames are not used on lanes")]
    NotOnLanes(&'static str),
}

/// Decodes one lane message.
pub fn decode(message: Bytes) -> Result<Frame, LaneError> {
    let mut rest = message;
    let frame = Frame::decode(&mut rest, LANE_MAX_FRAME)?;
    if !rest.is_empty() {
        return Err(LaneError::TrailingBytes);
    }
    match &frame {
        Frame::Hello(_) => Err(LaneError::NotOnLanes("Hello")),
        Frame::Window { .. } => Err(LaneError::NotOnLanes("Window")),
        Frame::GoAway { .. } => Err(LaneError::NotOnLanes("GoAway")),
        // It names the tunnel's stream the lane takes over, not the lane's.
        Frame::Ping { .. } | Frame::Pong { .. } | Frame::Moved { .. } => Ok(frame),
        other if other.stream() != LANE_STREAM => Err(LaneError::WrongStream),
        _ => Ok(frame),
    }
}

/// Encodes one frame as a lane message.
pub fn encode(frame: &Frame) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.encoded_len());
    frame.encode(&mut out);
    out.freeze()
}

/// A `Data` frame carrying `payload`, built with one copy of the bytes.
pub fn data(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    put_data_header(&mut out, payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

fn put_data_header(mut out: impl BufMut, payload: u32) {
    out.put_u8(crate::frame::TYPE_DATA);
    out.put_u32(LANE_STREAM);
    out.put_u32(payload);
}

/// The `Open` that starts a lane's stream.
pub fn open(target: &str) -> Bytes {
    encode(&Frame::Open {
        stream: LANE_STREAM,
        target: target.to_string(),
        window: 0,
    })
}

/// The first frame of a lane that takes over the tunnel's stream `stream`.
pub fn moved(stream: StreamId) -> Bytes {
    encode(&Frame::Moved { stream })
}

/// The `Reset` that refuses or ends a lane's stream.
pub fn reset(reason: ResetReason) -> Bytes {
    encode(&Frame::Reset {
        stream: LANE_STREAM,
        reason,
    })
}

/// How a lane's stream begins: its first frame but pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `Open`, with its target.
    Open(String),
    /// `Moved`: the lane takes over this stream of the tunnel.
    Moved(StreamId),
    /// Any other frame, or a message that is not one: the peer broke the protocol.
    Broken,
}

/// Reads a lane up to how its stream begins, skipping pings; `None` if the lane ended (or
/// failed) first.
pub async fn start(lane: &mut BoxLane) -> Option<Start> {
    loop {
        let start = match decode(lane.next().await?.ok()?) {
            Ok(Frame::Ping { .. }) => continue,
            Ok(Frame::Open { target, .. }) => Start::Open(target),
            Ok(Frame::Moved { stream }) => Start::Moved(stream),
            Ok(_) | Err(_) => Start::Broken,
        };
        return Some(start);
    }
}

/// A lane's connection (a WebSocket, or a framed lane), as a stream and sink of messages.
pub trait LaneTransport:
    Stream<Item = io::Result<Bytes>> + Sink<Bytes, Error = io::Error> + Send
{
}

impl<T> LaneTransport for T where
    T: Stream<Item = io::Result<Bytes>> + Sink<Bytes, Error = io::Error> + Send
{
}

/// A lane's transport, boxed, as the relay and the agent pass it around.
pub type BoxLane = Pin<Box<dyn LaneTransport>>;

/// A lane's stream as bytes (`AsyncRead + AsyncWrite`), once its `Open` has been sent or
/// received. Writes become `Data` frames of up to [`LANE_MAX_FRAME`]; shutdown sends
/// `Close`; a `Reset` read fails the next read like a reset tunnel stream
/// (`ConnectionRefused` for `refused`, `ConnectionReset` for any other reason).
pub struct LaneIo {
    lane: BoxLane,
    reading: Bytes,
    read_closed: bool,
    close_sent: bool,
    /// The next ping's timer and the interval, on the agent's side.
    keep_alive: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    nonce: u64,
}

impl LaneIo {
    /// `keep_alive`: ping every so often while the reader waits (the agent's side, whose
    /// connection crosses proxies and NAT), or never (the relay's).
    pub fn new(lane: BoxLane, keep_alive: Option<Duration>) -> LaneIo {
        LaneIo {
            lane,
            reading: Bytes::new(),
            read_closed: false,
            close_sent: false,
            keep_alive: keep_alive.map(|every| (Box::pin(tokio::time::sleep(every)), every)),
            nonce: 0,
        }
    }

    /// Sends a ping if the keep-alive is due and the lane has room; never blocks the read.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) {
        let Some((timer, every)) = self.keep_alive.as_mut() else {
            return;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return;
        }
        let next = tokio::time::Instant::now() + *every;
        timer.as_mut().reset(next);
        // Register the timer's waker for the next round.
        let _ = timer.as_mut().poll(cx);
        if let Poll::Ready(Ok(())) = self.lane.as_mut().poll_ready(cx) {
            self.nonce = self.nonce.wrapping_add(1);
            let ping = encode(&Frame::Ping { nonce: self.nonce });
            if self.lane.as_mut().start_send(ping).is_ok() {
                let _ = self.lane.as_mut().poll_flush(cx);
            }
        }
    }
}

fn protocol_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("lane: {error}"))
}

impl LaneIo {
    /// The stream's next bytes as they arrived, a slice of the frame that carried them
    /// (no copy); empty once the peer closed its direction. A carrier that writes them on
    /// as they are ([`crate::carry::join_tcp_lane`]) saves the copy [`AsyncRead`] makes.
    pub fn poll_read_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        loop {
            if !self.reading.is_empty() {
                return Poll::Ready(Ok(std::mem::take(&mut self.reading)));
            }
            if self.read_closed {
                return Poll::Ready(Ok(Bytes::new()));
            }
            // The spent message goes before the next is read: on a framed lane, its room in
            // the read buffer is then free to take the next bytes.
            self.reading = Bytes::new();
            let message = match self.lane.as_mut().poll_next(cx) {
                Poll::Ready(message) => message,
                Poll::Pending => {
                    self.poll_keep_alive(cx);
                    return Poll::Pending;
                }
            };
            match message {
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the lane closed before its stream did",
                    )))
                }
                Some(Err(error)) => return Poll::Ready(Err(error)),
                Some(Ok(message)) => match decode(message).map_err(protocol_error)? {
                    Frame::Data { payload, .. } => self.reading = payload,
                    Frame::Close { .. } => self.read_closed = true,
                    Frame::Reset { reason, .. } => {
                        return Poll::Ready(Err(stream_error(StreamError::Reset(reason))))
                    }
                    Frame::Ping { .. } | Frame::Pong { .. } => {}
                    Frame::Open { .. } => {
                        return Poll::Ready(Err(protocol_error("a second Open")));
                    }
                    _ => return Poll::Ready(Err(protocol_error("an unexpected frame"))),
                },
            }
        }
    }

    /// Ready once the lane takes another frame ([`LaneIo::start_send_data`]).
    pub fn poll_ready_to_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.close_sent {
            return Poll::Ready(Err(stream_error(StreamError::WriteClosed)));
        }
        self.lane.as_mut().poll_ready(cx)
    }

    /// Sends the bytes read into `buffer` (made by [`data_buffer`]) as one `Data` frame,
    /// its header written into the room kept for it: the bytes are not copied. Call
    /// [`LaneIo::poll_ready_to_send`] first.
    pub fn start_send_data(&mut self, buffer: BytesMut) -> io::Result<()> {
        if self.close_sent {
            return Err(stream_error(StreamError::WriteClosed));
        }
        let frame = finish_data(buffer)?;
        self.lane.as_mut().start_send(frame)
    }
}

/// A buffer to read up to `room` bytes of a stream into, with the room for a `Data` frame's
/// header kept in front ([`LaneIo::start_send_data`]). `room` is at most [`LANE_MAX_FRAME`].
pub fn data_buffer(room: usize) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(HEADER_LEN + room);
    buffer.put_bytes(0, HEADER_LEN);
    buffer
}

/// Writes the `Data` header into the room [`data_buffer`] kept for it.
fn finish_data(mut buffer: BytesMut) -> io::Result<Bytes> {
    let payload = buffer
        .len()
        .checked_sub(HEADER_LEN)
        .filter(|&len| len <= LANE_MAX_FRAME as usize)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "lane: a data buffer without its header room, or larger than a lane frame",
            )
        })?;
    put_data_header(&mut buffer[..HEADER_LEN], payload as u32);
    Ok(buffer.freeze())
}

impl AsyncRead for LaneIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.reading.is_empty() {
            this.reading = ready!(this.poll_read_bytes(cx))?;
        }
        let n = this.reading.len().min(buf.remaining());
        buf.put_slice(&this.reading[..n]);
        this.reading.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LaneIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_ready_to_send(cx))?;
        let n = buf.len().min(LANE_MAX_FRAME as usize);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        self.lane.as_mut().start_send(data(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lane.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.close_sent {
            ready!(self.lane.as_mut().poll_ready(cx))?;
            let close = encode(&Frame::Close {
                stream: LANE_STREAM,
            });
            self.lane.as_mut().start_send(close)?;
            self.close_sent = true;
        }
        self.lane.as_mut().poll_flush(cx)
    }
}

/// One end of an in-memory lane.
struct MemoryEnd {
    rx: mpsc::Receiver<Bytes>,
    /// Unbounded: room is never short in these tests.
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Stream for MemoryEnd {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Bytes> for MemoryEnd {
    type Error = io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Bytes) -> io::Result<()> {
        self.tx
            .send(item)
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Two connected lane ends in memory, for tests of what runs over lanes (as
/// [`crate::memory_pair`] is for tunnels). Needs a tokio runtime: a task per direction
/// passes the messages on.
pub fn memory_pair() -> (BoxLane, BoxLane) {
    let (a_tx, mut a_out) = mpsc::unbounded_channel::<Bytes>();
    let (b_tx, mut b_out) = mpsc::unbounded_channel::<Bytes>();
    let (to_b, b_rx) = mpsc::channel(64);
    let (to_a, a_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(m) = a_out.recv().await {
            if to_b.send(m).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(m) = b_out.recv().await {
            if to_a.send(m).await.is_err() {
                break;
            }
        }
    });
    let a = MemoryEnd { rx: a_rx, tx: a_tx };
    let b = MemoryEnd { rx: b_rx, tx: b_tx };
    (Box::pin(a), Box::pin(b))
}

#[cfg(test)]
mod tests;
