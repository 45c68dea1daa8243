//! Framed lanes: a lane's frames written straight onto the bytes of its connection, after
//! an HTTP/1.1 upgrade to [`PROTOCOL`] instead of to WebSocket.
//!
//! A lane carries one stream inside TLS, end to end between the agent and the relay, so
//! nothing between them sees what it carries; WebSocket framing adds nothing there. What it
//! costs is measurable on a bulk stream: every message copied once more into the WebSocket
//! library's write buffer, masked on the agent's side and unmasked on the relay's, and read
//! through a buffer the library zeroes first (docs/benchmarks.md). The tunnel's frames
//! already carry their own length (the 9-byte header, [`crate::frame`]), so on a framed
//! lane they follow each other on the byte stream as they are: a message of this transport
//! is one whole frame, exactly what a WebSocket lane's binary message is, and everything
//! above the transport ([`super::LaneIo`], the relay's joins) is the same for both.
//!
//! A relay offers framed lanes with [`OFFERED`] on its tunnel's `101`; an agent that sees it
//! opens its lanes with `Upgrade: portico-lane`, and one whose framed lane is refused as
//! not understood (a balancer in front of the relay that passes WebSocket upgrades only)
//! opens WebSocket lanes instead.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};

use super::LANE_MAX_FRAME;
use crate::frame::HEADER_LEN;

/// The `Upgrade` protocol of a framed lane.
pub const PROTOCOL: &str = "portico-lane";
/// The header of the tunnel's `101` answer by which a relay offers framed lanes (value `1`),
/// beside [`super::LANES_OFFERED`].
pub const OFFERED: &str = "portico-framed-lanes";

/// Room taken when a frame's header is read: two of the pieces senders write
/// ([`super::LANE_PIECE`]), so that the frame, and usually the next, fit without another
/// allocation.
const READ_SIZE: usize = 64 * 1024;
/// Bytes queued for writing beyond which the sink asks its sender to wait until they are
/// written: a few pieces, so that one vectored write takes several.
const QUEUE_LIMIT: usize = 128 * 1024;
/// The most frames handed to one vectored write.
const MAX_SLICES: usize = 16;

/// A lane's connection as a stream and sink of whole frames (a [`super::LaneTransport`]).
pub struct FramedLane<IO> {
    io: IO,
    /// Bytes read and not yet handed out as frames.
    read: BytesMut,
    read_ended: bool,
    /// Frames accepted by the sink and not yet written, the first possibly in part.
    queue: VecDeque<Bytes>,
    queued: usize,
}

impl<IO> FramedLane<IO> {
    /// `read_ahead`: bytes that arrived with the upgrade's answer, the start of the stream.
    pub fn new(io: IO, read_ahead: Bytes) -> FramedLane<IO> {
        FramedLane {
            io,
            read: BytesMut::from(&read_ahead[..]),
            read_ended: false,
            queue: VecDeque::new(),
            queued: 0,
        }
    }

    /// The length of the whole frame at the front of the read buffer, once its header is in.
    fn front_frame_len(&self) -> io::Result<Option<usize>> {
        let Some(header) = self.read.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let payload = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        if payload > LANE_MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("lane: a frame of {payload} bytes exceeds the limit of {LANE_MAX_FRAME}"),
            ));
        }
        Ok(Some(HEADER_LEN + payload as usize))
    }
}

impl<IO: AsyncRead + Unpin> Stream for FramedLane<IO> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let whole = match this.front_frame_len() {
                Ok(whole) => whole,
                Err(error) => return Poll::Ready(Some(Err(error))),
            };
            if let Some(len) = whole.filter(|&len| this.read.len() >= len) {
                return Poll::Ready(Some(Ok(this.read.split_to(len).freeze())));
            }
            if this.read_ended {
                return Poll::Ready(match this.read.is_empty() {
                    true => None,
                    false => Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "lane: the connection ended inside a frame",
                    ))),
                });
            }
            // Each read ends where the front frame (or, first, its header) does, so the
            // buffer never holds the start of the next frame while the frames before it are
            // still in use: making room never copies a frame's bytes (at most a header's).
            // Once the frames handed out before are dropped, reserving takes their room
            // back instead of allocating.
            let (wanted, room) = match whole {
                None => (HEADER_LEN - this.read.len(), READ_SIZE),
                Some(len) => (len - this.read.len(), len - this.read.len()),
            };
            this.read.reserve(room);
            // Into the spare room as it is: no zeroing first.
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.io),
                cx,
                &mut (&mut this.read).limit(wanted)
            )) {
                Ok(0) => this.read_ended = true,
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> FramedLane<IO> {
    /// Writes queued frames until no more than `keep` bytes wait, or the connection has no
    /// room.
    fn poll_write_queue(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<io::Result<()>> {
        while self.queued > keep {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slice, frame) in slices.iter_mut().zip(&self.queue) {
                *slice = IoSlice::new(frame);
                count += 1;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.queued -= n;
            let mut left = n;
            while left > 0 {
                let front = self.queue.front_mut().expect("written bytes were queued");
                if front.len() <= left {
                    left -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> Sink<Bytes> for FramedLane<IO> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written only down to the limit: the rest goes with the next frames.
        ready!(self.poll_write_queue(cx, QUEUE_LIMIT - 1))?;
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> io::Result<()> {
        self.queued += frame.len();
        self.queue.push_back(frame);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_queue(cx, 0))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_queue(cx, 0))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, ResetReason};
    use crate::lane::{self, LaneIo, LANE_STREAM};
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(10);

    async fn next(lane: &mut FramedLane<tokio::io::DuplexStream>) -> Option<io::Result<Bytes>> {
        tokio::time::timeout(LIMIT, lane.next()).await.unwrap()
    }

    /// Frames of every size cross a connection that moves a few hundred bytes at a time,
    /// and each arrives whole, in order; closing one end ends the other's frames.
    #[tokio::test]
    async fn frames_arrive_whole_over_a_narrow_connection() {
        let (a, b) = tokio::io::duplex(700);
        let (mut a, mut b) = (
            FramedLane::new(a, Bytes::new()),
            FramedLane::new(b, Bytes::new()),
        );
        let big: Vec<u8> = (0..LANE_MAX_FRAME).map(|i| (i % 251) as u8).collect();
        let frames = vec![
            lane::open("10.0.0.7:22"),
            lane::data(b"x"),
            lane::data(&big),
            super::super::encode(&Frame::Ping { nonce: 9 }),
            lane::reset(ResetReason::Refused),
        ];
        let sent = frames.clone();
        let sender = tokio::spawn(async move {
            for frame in sent {
                a.feed(frame).await.unwrap();
            }
            a.close().await.unwrap();
        });
        for frame in &frames {
            assert_eq!(&next(&mut b).await.unwrap().unwrap(), frame);
        }
        assert!(next(&mut b).await.is_none(), "closed after the last frame");
        sender.await.unwrap();
    }

    /// A read ends where the front frame does: with a frame handed out and still held, the
    /// next frame's bytes are not yet in the buffer, so making room for them never copies
    /// part of a frame to a new allocation.
    #[tokio::test]
    async fn reads_end_at_the_front_frame() {
        let (a, mut b) = tokio::io::duplex(1024 * 1024);
        let mut lane = FramedLane::new(a, Bytes::new());
        let first = lane::data(&[7; 40_000]);
        let second = lane::data(&[8; 40_000]);
        b.write_all(&first).await.unwrap();
        b.write_all(&second).await.unwrap();
        let held = next(&mut lane).await.unwrap().unwrap();
        assert_eq!(held, first);
        assert!(
            lane.read.is_empty(),
            "nothing of the next frame was read with it"
        );
        assert_eq!(next(&mut lane).await.unwrap().unwrap(), second);
    }

    /// Bytes that came with the upgrade's answer are the stream's first.
    #[tokio::test]
    async fn read_ahead_bytes_come_first() {
        let (a, mut b) = tokio::io::duplex(1024);
        let open = lane::open("plc:502");
        let data = lane::data(b"hello");
        // The answer's read brought the whole `Open` and part of the `Data`.
        let mut ahead = BytesMut::from(&open[..]);
        ahead.extend_from_slice(&data[..4]);
        let mut lane = FramedLane::new(a, ahead.freeze());
        b.write_all(&data[4..]).await.unwrap();
        assert_eq!(next(&mut lane).await.unwrap().unwrap(), open);
        assert_eq!(next(&mut lane).await.unwrap().unwrap(), data);
    }

    /// A header announcing more than a lane frame may carry is refused at once, before its
    /// payload is waited for or room is made for it.
    #[tokio::test]
    async fn an_oversized_frame_is_refused_from_its_header() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut lane = FramedLane::new(a, Bytes::new());
        let mut header = vec![0x03];
        header.extend_from_slice(&LANE_STREAM.to_be_bytes());
        header.extend_from_slice(&(LANE_MAX_FRAME + 1).to_be_bytes());
        b.write_all(&header).await.unwrap();
        let error = next(&mut lane).await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("exceeds the limit"), "{error}");
        assert!(lane.read.capacity() < 2 * READ_SIZE);
    }

    /// A connection that ends inside a frame is an error, not a shorter frame.
    #[tokio::test]
    async fn a_connection_ending_inside_a_frame_is_an_error() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut lane = FramedLane::new(a, Bytes::new());
        let data = lane::data(b"cut short");
        b.write_all(&data[..data.len() - 3]).await.unwrap();
        drop(b);
        let error = next(&mut lane).await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A lane's stream as bytes ([`LaneIo`]) works on framed lanes as on WebSocket ones: a
    /// megabyte each way, and a half close passed on.
    #[tokio::test]
    async fn a_stream_runs_over_a_framed_lane() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let a: lane::BoxLane = Box::pin(FramedLane::new(a, Bytes::new()));
        let b: lane::BoxLane = Box::pin(FramedLane::new(b, Bytes::new()));
        let (mut a, mut b) = (LaneIo::new(a, None), LaneIo::new(b, None));
        let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&payload).await.unwrap();
            a.shutdown().await.unwrap();
            a
        });
        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, b.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert!(got == expected, "the bytes arrived intact");
        let mut a = writer.await.unwrap();
        b.write_all(b"and back").await.unwrap();
        b.shutdown().await.unwrap();
        let mut back = Vec::new();
        tokio::time::timeout(LIMIT, a.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, b"and back");
    }
}
