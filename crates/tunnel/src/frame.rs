//! The binary frame codec of the stream channel.
//!
//! One WebSocket binary message carries one or more frames, back to back. Every frame has
//! the same 9-byte header, then a payload whose layout the type fixes:
//!
//! ```text
//! type: u8 | stream id: u32 BE | payload length: u32 BE | payload
//! ```
//!
//! Decoding never trusts a length: each is checked against what is left of the message and
//! against the limits before anything is allocated, and every impossible value (unknown
//! type or reason, stream id 0 where a stream is needed, a zero credit grant…) is a typed
//! [`DecodeError`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks, sent in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes of the fixed header before each payload.
pub const HEADER_LEN: usize = 9;
/// The smallest maximum frame size a peer may declare; also what a side sends before the
/// peer's hello has told it more.
pub const MIN_MAX_FRAME: u32 = 16 * 1024;
/// The largest maximum frame size a peer may declare.
pub const MAX_MAX_FRAME: u32 = 1024 * 1024;
/// The largest transport message a peer ever needs to accept: frames of at most
/// `MAX_MAX_FRAME` packed up to the sender's `max_message`, with room to spare. The
/// WebSocket layers on both sides refuse anything larger.
pub const MAX_TRANSPORT_MESSAGE: usize = 4 * MAX_MAX_FRAME as usize;
/// The longest target string an `Open` may carry.
pub const MAX_TARGET_LEN: usize = 512;
/// The most credit a single stream may be granted in total.
pub const MAX_WINDOW: u32 = 64 * 1024 * 1024;
/// The longest keep-alive interval a peer may declare (one hour).
pub const MAX_KEEP_ALIVE_MS: u32 = 3_600_000;

/// A stream's number within one tunnel. 0 names the tunnel itself (hello, ping, go-away).
pub type StreamId = u32;

const TYPE_HELLO: u8 = 0x01;
const TYPE_OPEN: u8 = 0x02;
pub(crate) const TYPE_DATA: u8 = 0x03;
const TYPE_WINDOW: u8 = 0x04;
const TYPE_CLOSE: u8 = 0x05;
const TYPE_RESET: u8 = 0x06;
const TYPE_PING: u8 = 0x07;
const TYPE_PONG: u8 = 0x08;
const TYPE_GO_AWAY: u8 = 0x09;
const TYPE_MOVED: u8 = 0x0a;

/// What a tunnel's side is. It fixes which stream ids the side opens: endpoints open odd
/// ids, the relay even ones, so both sides can open at once without a collision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A Device Endpoint, next to a machine in a factory network.
    Device,
    /// A Service Endpoint, on an engineer's machine or a server in a service network.
    Service,
    /// The relay on the Remote Services hosts.
    Relay,
}

impl Role {
    fn code(self) -> u8 {
        match self {
            Role::Device => 1,
            Role::Service => 2,
            Role::Relay => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        match code {
            1 => Ok(Role::Device),
            2 => Ok(Role::Service),
            3 => Ok(Role::Relay),
            other => Err(DecodeError::UnknownRole(other)),
        }
    }

    /// The first stream id this side opens; the following ones step by two.
    pub fn first_stream_id(self) -> StreamId {
        match self {
            Role::Device | Role::Service => 1,
            Role::Relay => 2,
        }
    }

    /// Whether `id` is one this side would open.
    pub fn opens(self, id: StreamId) -> bool {
        id != 0 && id % 2 == self.first_stream_id() % 2
    }
}

/// Why a stream was aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResetReason {
    /// The receiver's policy does not allow this target (RS-7).
    Refused,
    /// The target could not be reached (connection refused, no route, DNS).
    Unreachable,
    /// The target did not answer in time.
    Timeout,
    /// The peer broke the protocol on this stream (e.g. sent beyond its credit).
    ProtocolError,
    /// The side is shutting down.
    Shutdown,
    /// The application abandoned the stream (dropped without closing).
    Cancelled,
    /// The receiver already has as many streams as it allows.
    TooManyStreams,
}

impl ResetReason {
    fn code(self) -> u8 {
        match self {
            ResetReason::Refused => 1,
            ResetReason::Unreachable => 2,
            ResetReason::Timeout => 3,
            ResetReason::ProtocolError => 4,
            ResetReason::Shutdown => 5,
            ResetReason::Cancelled => 6,
            ResetReason::TooManyStreams => 7,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            1 => ResetReason::Refused,
            2 => ResetReason::Unreachable,
            3 => ResetReason::Timeout,
            4 => ResetReason::ProtocolError,
            5 => ResetReason::Shutdown,
            6 => ResetReason::Cancelled,
            7 => ResetReason::TooManyStreams,
            other => return Err(DecodeError::UnknownResetReason(other)),
        })
    }
}

/// Why a whole tunnel ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoAwayReason {
    /// The side is shutting down (server restart, agent stop).
    ShuttingDown,
    /// The endpoint's credentials were revoked (RS-9).
    Revoked,
    /// A newer connection of the same endpoint took over.
    Replaced,
    /// The peer broke the protocol.
    ProtocolError,
    /// The peer speaks a protocol version this side does not.
    UnsupportedVersion,
    /// Nothing arrived from the peer for too long.
    KeepAliveTimeout,
}

impl GoAwayReason {
    fn code(self) -> u8 {
        match self {
            GoAwayReason::ShuttingDown => 1,
            GoAwayReason::Revoked => 2,
            GoAwayReason::Replaced => 3,
            GoAwayReason::ProtocolError => 4,
            GoAwayReason::UnsupportedVersion => 5,
            GoAwayReason::KeepAliveTimeout => 6,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            1 => GoAwayReason::ShuttingDown,
            2 => GoAwayReason::Revoked,
            3 => GoAwayReason::Replaced,
            4 => GoAwayReason::ProtocolError,
            5 => GoAwayReason::UnsupportedVersion,
            6 => GoAwayReason::KeepAliveTimeout,
            other => return Err(DecodeError::UnknownGoAwayReason(other)),
        })
    }
}

/// Words for logs and errors: an operator reads "the endpoint was revoked", never `Revoked`.
impl std::fmt::Display for GoAwayReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GoAwayReason::ShuttingDown => "it is shutting down",
            GoAwayReason::Revoked => "the endpoint was revoked",
            GoAwayReason::Replaced => "a newer connection of the endpoint replaced it",
            GoAwayReason::ProtocolError => "the tunnel protocol was broken",
            GoAwayReason::UnsupportedVersion => "the protocol version is not supported",
            GoAwayReason::KeepAliveTimeout => "nothing arrived for too long",
        })
    }
}

/// The first frame each side sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub role: Role,
    /// The largest `Data` payload this side accepts.
    pub max_frame: u32,
    /// How often this side pings; the peer pings at least as often in return.
    pub keep_alive_ms: u32,
}

/// One frame of the stream channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    /// Opens a stream to `target`; `window` is the opener's receive window, so the peer
    /// may answer with that much data at once.
    Open {
        stream: StreamId,
        target: String,
        window: u32,
    },
    Data {
        stream: StreamId,
        payload: Bytes,
    },
    /// Grants the peer `credit` more bytes of `Data` on the stream.
    Window {
        stream: StreamId,
        credit: u32,
    },
    /// Half close: the sender sends no more data on the stream.
    Close {
        stream: StreamId,
    },
    /// On a tunnel: the sender sends no more data on the stream *here*; the rest of this
    /// direction follows on a lane. As the first frame of a lane: this lane carries the
    /// tunnel's stream `stream` from now on (`crate::lane`, "moving a stream"). Sent only
    /// to a peer that said it understands it.
    Moved {
        stream: StreamId,
    },
    Reset {
        stream: StreamId,
        reason: ResetReason,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    GoAway {
        reason: GoAwayReason,
    },
}

/// Why bytes are not a valid frame. Every variant is the peer's fault; none is a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("an empty message carries no frame")]
    EmptyMessage,
    #[error("frame truncated: {needed} bytes needed, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("{frame} payload of {len} bytes is not the expected length")]
    BadLength { frame: &'static str, len: u32 },
    #[error("data payload of {len} bytes exceeds the maximum frame size {max}")]
    PayloadTooLarge { len: u32, max: u32 },
    #[error("{frame} frame on stream {stream}: {expected}")]
    BadStreamId {
        frame: &'static str,
        stream: StreamId,
        expected: &'static str,
    },
    #[error("unknown role code {0}")]
    UnknownRole(u8),
    #[error("unknown reset reason {0}")]
    UnknownResetReason(u8),
    #[error("unknown go-away reason {0}")]
    UnknownGoAwayReason(u8),
    #[error("maximum frame size {0} outside {MIN_MAX_FRAME}..={MAX_MAX_FRAME}")]
    BadMaxFrame(u32),
    #[error("keep-alive interval {0} ms outside 1..={MAX_KEEP_ALIVE_MS}")]
    BadKeepAlive(u32),
    #[error("open target is empty, longer than {MAX_TARGET_LEN} bytes, or not printable UTF-8")]
    BadTarget,
    #[error("window of {0} bytes outside 1..={MAX_WINDOW}")]
    BadWindow(u32),
    #[error("empty data frame")]
    EmptyData,
}

impl Frame {
    /// The stream the frame belongs to; 0 for tunnel-wide frames.
    pub fn stream(&self) -> StreamId {
        match self {
            Frame::Open { stream, .. }
            | Frame::Data { stream, .. }
            | Frame::Window { stream, .. }
            | Frame::Close { stream }
            | Frame::Moved { stream }
            | Frame::Reset { stream, .. } => *stream,
            Frame::Hello(_) | Frame::Ping { .. } | Frame::Pong { .. } | Frame::GoAway { .. } => 0,
        }
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Frame::Hello(_) => 11,
                Frame::Open { target, .. } => 6 + target.len(),
                Frame::Data { payload, .. } => payload.len(),
                Frame::Window { .. } => 4,
                Frame::Close { .. } | Frame::Moved { .. } => 0,
                Frame::Reset { .. } | Frame::GoAway { .. } => 1,
                Frame::Ping { .. } | Frame::Pong { .. } => 8,
            }
    }

    /// Appends the frame to `out`. The caller builds only valid frames (the multiplexer
    /// does); lengths fit in u32 because every payload is bounded far below 4 GiB.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        let payload_len = (self.encoded_len() - HEADER_LEN) as u32;
        let kind = match self {
            Frame::Hello(_) => TYPE_HELLO,
            Frame::Open { .. } => TYPE_OPEN,
            Frame::Data { .. } => TYPE_DATA,
            Frame::Window { .. } => TYPE_WINDOW,
            Frame::Close { .. } => TYPE_CLOSE,
            Frame::Moved { .. } => TYPE_MOVED,
            Frame::Reset { .. } => TYPE_RESET,
            Frame::Ping { .. } => TYPE_PING,
            Frame::Pong { .. } => TYPE_PONG,
            Frame::GoAway { .. } => TYPE_GO_AWAY,
        };
        out.put_u8(kind);
        out.put_u32(self.stream());
        out.put_u32(payload_len);
        match self {
            Frame::Hello(hello) => {
                out.put_u16(hello.version);
                out.put_u8(hello.role.code());
                out.put_u32(hello.max_frame);
                out.put_u32(hello.keep_alive_ms);
            }
            Frame::Open { target, window, .. } => {
                out.put_u32(*window);
                out.put_u16(target.len() as u16);
                out.put_slice(target.as_bytes());
            }
            Frame::Data { payload, .. } => out.put_slice(payload),
            Frame::Window { credit, .. } => out.put_u32(*credit),
            Frame::Close { .. } | Frame::Moved { .. } => {}
            Frame::Reset { reason, .. } => out.put_u8(reason.code()),
            Frame::Ping { nonce } | Frame::Pong { nonce } => out.put_u64(*nonce),
            Frame::GoAway { reason } => out.put_u8(reason.code()),
        }
    }

    /// Decodes one frame from the front of `buf`, advancing it past the frame.
    /// `max_frame` bounds `Data` payloads (this side's declared maximum).
    pub fn decode(buf: &mut Bytes, max_frame: u32) -> Result<Frame, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let kind = buf[0];
        let stream = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let len = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
        // Bound the length before comparing it to what is left, so that a huge declared
        // length is reported as too large rather than as truncated.
        let limit = match kind {
            TYPE_DATA => max_frame,
            TYPE_OPEN => 6 + MAX_TARGET_LEN as u32,
            _ => 11,
        };
        if len > limit {
            return match kind {
                TYPE_DATA => Err(DecodeError::PayloadTooLarge {
                    len,
                    max: max_frame,
                }),
                TYPE_HELLO..=TYPE_MOVED => Err(DecodeError::BadLength {
                    frame: type_name(kind),
                    len,
                }),
                other => Err(DecodeError::UnknownType(other)),
            };
        }
        let needed = HEADER_LEN + len as usize;
        if buf.len() < needed {
            return Err(DecodeError::Truncated {
                needed,
                available: buf.len(),
            });
        }
        buf.advance(HEADER_LEN);
        let mut payload = buf.split_to(len as usize);
        let frame = decode_payload(kind, stream, len, &mut payload)?;
        Ok(frame)
    }
}

fn type_name(kind: u8) -> &'static str {
    match kind {
        TYPE_HELLO => "hello",
        TYPE_OPEN => "open",
        TYPE_DATA => "data",
        TYPE_WINDOW => "window",
        TYPE_CLOSE => "close",
        TYPE_RESET => "reset",
        TYPE_PING => "ping",
        TYPE_PONG => "pong",
        TYPE_GO_AWAY => "go-away",
        TYPE_MOVED => "moved",
        _ => "unknown",
    }
}

fn decode_payload(
    kind: u8,
    stream: StreamId,
    len: u32,
    payload: &mut Bytes,
) -> Result<Frame, DecodeError> {
    let name = type_name(kind);
    let exact = |expected: u32| {
        if len == expected {
            Ok(())
        } else {
            Err(DecodeError::BadLength { frame: name, len })
        }
    };
    let on_stream = || {
        if stream == 0 {
            Err(DecodeError::BadStreamId {
                frame: name,
                stream,
                expected: "a stream id other than 0",
            })
        } else {
            Ok(stream)
        }
    };
    let on_tunnel = || {
        if stream != 0 {
            Err(DecodeError::BadStreamId {
                frame: name,
                stream,
                expected: "stream id 0",
            })
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        TYPE_HELLO => {
            on_tunnel()?;
            exact(11)?;
            let version = payload.get_u16();
            let role = Role::from_code(payload.get_u8())?;
            let max_frame = payload.get_u32();
            let keep_alive_ms = payload.get_u32();
            if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&max_frame) {
                return Err(DecodeError::BadMaxFrame(max_frame));
            }
            if keep_alive_ms == 0 || keep_alive_ms > MAX_KEEP_ALIVE_MS {
                return Err(DecodeError::BadKeepAlive(keep_alive_ms));
            }
            Frame::Hello(Hello {
                version,
                role,
                max_frame,
                keep_alive_ms,
            })
        }
        TYPE_OPEN => {
            let stream = on_stream()?;
            if len < 6 {
                return Err(DecodeError::BadLength { frame: name, len });
            }
            let window = payload.get_u32();
            let target_len = payload.get_u16() as usize;
            if target_len != payload.len() {
                return Err(DecodeError::BadLength { frame: name, len });
            }
            if window > MAX_WINDOW {
                return Err(DecodeError::BadWindow(window));
            }
            let target = std::str::from_utf8(payload).map_err(|_| DecodeError::BadTarget)?;
            if !is_valid_target(target) {
                return Err(DecodeError::BadTarget);
            }
            Frame::Open {
                stream,
                target: target.to_owned(),
                window,
            }
        }
        TYPE_DATA => {
            let stream = on_stream()?;
            if len == 0 {
                return Err(DecodeError::EmptyData);
            }
            Frame::Data {
                stream,
                payload: payload.split_to(len as usize),
            }
        }
        TYPE_WINDOW => {
            let stream = on_stream()?;
            exact(4)?;
            let credit = payload.get_u32();
            if credit == 0 || credit > MAX_WINDOW {
                return Err(DecodeError::BadWindow(credit));
            }
            Frame::Window { stream, credit }
        }
        TYPE_CLOSE => {
            let stream = on_stream()?;
            exact(0)?;
            Frame::Close { stream }
        }
        TYPE_MOVED => {
            let stream = on_stream()?;
            exact(0)?;
            Frame::Moved { stream }
        }
        TYPE_RESET => {
            let stream = on_stream()?;
            exact(1)?;
            let reason = ResetReason::from_code(payload.get_u8())?;
            Frame::Reset { stream, reason }
        }
        TYPE_PING | TYPE_PONG => {
            on_tunnel()?;
            exact(8)?;
            let nonce = payload.get_u64();
            if kind == TYPE_PING {
                Frame::Ping { nonce }
            } else {
                Frame::Pong { nonce }
            }
        }
        TYPE_GO_AWAY => {
            on_tunnel()?;
            exact(1)?;
            let reason = GoAwayReason::from_code(payload.get_u8())?;
            Frame::GoAway { reason }
        }
        other => return Err(DecodeError::UnknownType(other)),
    })
}

/// A target is opaque to the protocol (`mapping:3`, `host:port`), but it ends up in logs
/// and audit records, so it must be short, non-empty and free of control characters.
pub fn is_valid_target(target: &str) -> bool {
    !target.is_empty() && target.len() <= MAX_TARGET_LEN && !target.chars().any(char::is_control)
}

/// Decodes every frame of one message. A message with a bad frame is rejected whole: the
/// tunnel ends on it anyway, so there is no point in acting on the frames before it.
pub fn decode_message(message: Bytes, max_frame: u32) -> Result<Vec<Frame>, DecodeError> {
    if message.is_empty() {
        return Err(DecodeError::EmptyMessage);
    }
    let mut rest = message;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        frames.push(Frame::decode(&mut rest, max_frame)?);
    }
    Ok(frames)
}

/// Encodes frames into one message.
pub fn encode_message(frames: &[Frame]) -> Bytes {
    let mut out = BytesMut::with_capacity(frames.iter().map(Frame::encoded_len).sum());
    for frame in frames {
        frame.encode(&mut out);
    }
    out.freeze()
}

#[cfg(test)]
mod tests;
