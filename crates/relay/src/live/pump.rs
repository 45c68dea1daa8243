//! Carrying a joined stream's bytes between its two sides, each a lane or a tunnel stream,
//! and switching a side from its tunnel to a lane when it moves (docs/tunnel.md, "Moving a
//! stream to a lane").
//!
//! Nothing is copied on the way but where a tunnel stream's bytes go onto a lane: a lane's
//! `Data` frame goes on to another lane as the message it came in, and its payload to a
//! tunnel stream as a slice of that message; a tunnel stream's pieces go to another tunnel
//! stream as they came.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use portico_fair::TurnCounter;
use portico_tunnel::carry::{own_buffer, write_all};
use portico_tunnel::lane::{self, BoxLane, MOVE_WAIT};
use portico_tunnel::{Frame, ResetReason, TunnelStream};
use tokio::sync::oneshot;

/// A lane that takes a tunnel stream's side over, once it comes (its `Moved` already sent
/// or read): the agent's, for a stream it opened (it sends the lane; the relay keeps a
/// place on the tunnel's `MoveBoard`), or the relay's, for a stream it opened on a
/// dialler's tunnel (it takes the dialler's next idle dial lane). A side that never moves
/// never gets one.
pub type Mover = BoxFuture<'static, BoxLane>;

/// A mover that never yields a lane: the side stays where it is.
pub fn never() -> Mover {
    Box::pin(std::future::pending())
}

/// One side of a joined stream: a lane, or a stream of a tunnel (this node's, or a link's).
pub enum Side {
    Lane(BoxLane),
    Stream(TunnelStream),
}

/// Carries bytes between the two sides until both directions end, counting what is read
/// from each (`a_read`, `b_read`). A tunnel stream's side moves to the lane its mover
/// yields, if it yields one. The first direction that fails ends both (a lane gone
/// without a `Reset`, a reset stream), so the other agent's connection is not left open.
pub async fn pass(
    (a, a_mover): (Side, Mover),
    (b, b_mover): (Side, Mover),
    a_read: &AtomicU64,
    b_read: &AtomicU64,
) -> io::Result<()> {
    let (mut a_stream, mut b_stream) = (None, None);
    let (a_in, a_out) = ends(a, &mut a_stream);
    let (b_in, b_out) = ends(b, &mut b_stream);
    let (a_lane_in_tx, a_lane_in) = oneshot::channel();
    let (a_lane_out_tx, a_lane_out) = oneshot::channel();
    let (b_lane_in_tx, b_lane_in) = oneshot::channel();
    let (b_lane_out_tx, b_lane_out) = oneshot::channel();
    let a_to_b = direction(a_in, b_out, a_lane_in, b_lane_out, a_read);
    let b_to_a = direction(b_in, a_out, b_lane_in, a_lane_out, b_read);
    tokio::select! {
        passed = async { tokio::try_join!(a_to_b, b_to_a).map(|_| ()) } => passed,
        never = hand_over(a_mover, a_lane_in_tx, a_lane_out_tx) => match never {},
        never = hand_over(b_mover, b_lane_in_tx, b_lane_out_tx) => match never {},
    }
}

/// A side's two ends: a lane's reading and writing halves, or a tunnel stream (kept in
/// `slot`, where it lives until the join ends) read and written through the same handle.
fn ends(side: Side, slot: &mut Option<TunnelStream>) -> (Inlet<'_>, Outlet<'_>) {
    match side {
        Side::Stream(stream) => {
            let stream: &TunnelStream = slot.insert(stream);
            (Inlet::Stream(stream), Outlet::Stream(stream))
        }
        Side::Lane(lane) => {
            let (sink, stream) = lane.split();
            (Inlet::Lane(stream), Outlet::Lane(sink))
        }
    }
}

/// Gives the halves of the lane a side moves to, to the direction that reads the side and
/// the one that writes it.
async fn hand_over(
    mover: Mover,
    reader: oneshot::Sender<SplitStream<BoxLane>>,
    writer: oneshot::Sender<SplitSink<BoxLane, Bytes>>,
) -> std::convert::Infallible {
    let (sink, stream) = mover.await.split();
    let _ = writer.send(sink);
    let _ = reader.send(stream);
    std::future::pending().await
}

/// Where a direction reads.
enum Inlet<'a> {
    Stream(&'a TunnelStream),
    Lane(SplitStream<BoxLane>),
}

/// What a direction read.
enum Piece {
    /// Bytes, with the lane message they came in (passed on as it is to a lane).
    Data {
        payload: Bytes,
        message: Option<Bytes>,
    },
    /// The direction is done.
    Closed,
    /// The direction goes on on the side's lane.
    Moved,
    /// The sending agent reset the stream on its lane.
    Reset(ResetReason, Bytes),
}

fn lane_error(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl Inlet<'_> {
    async fn next(&mut self) -> io::Result<Piece> {
        match self {
            Inlet::Stream(stream) => {
                let payload =
                    std::future::poll_fn(|cx| stream.poll_read_bytes(cx, usize::MAX)).await?;
                Ok(match payload.is_empty() {
                    false => Piece::Data {
                        payload,
                        message: None,
                    },
                    true if stream.moved_in() => Piece::Moved,
                    true => Piece::Closed,
                })
            }
            Inlet::Lane(lane) => loop {
                let message = lane.next().await.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a lane closed before its stream",
                    )
                })??;
                let frame = lane::decode(message.clone())
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
                match frame {
                    Frame::Data { payload, .. } => {
                        return Ok(Piece::Data {
                            payload,
                            message: Some(message),
                        })
                    }
                    Frame::Close { .. } => return Ok(Piece::Closed),
                    Frame::Reset { reason, .. } => return Ok(Piece::Reset(reason, message)),
                    Frame::Ping { .. } | Frame::Pong { .. } => {}
                    _ => return Err(lane_error("an unexpected frame on a lane")),
                }
            },
        }
    }
}

/// Where a direction writes.
enum Outlet<'a> {
    Stream(&'a TunnelStream),
    Lane(SplitSink<BoxLane, Bytes>),
}

impl Outlet<'_> {
    async fn put(&mut self, payload: Bytes, message: Option<Bytes>) -> io::Result<()> {
        match self {
            Outlet::Stream(stream) => write_all(stream, own_buffer(payload)).await,
            Outlet::Lane(lane) => {
                let message = message.unwrap_or_else(|| lane::data(&payload));
                lane.feed(message).await
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Outlet::Stream(_) => Ok(()),
            Outlet::Lane(lane) => lane.flush().await,
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        match self {
            Outlet::Stream(stream) => stream.close(),
            Outlet::Lane(lane) => {
                lane.send(lane::encode(&Frame::Close {
                    stream: lane::LANE_STREAM,
                }))
                .await
            }
        }
    }

    /// Ends the stream for the agent on this side: a lane is told why; a tunnel stream is
    /// reset when the join drops it.
    async fn reset(&mut self, message: Bytes) {
        if let Outlet::Lane(lane) = self {
            let _ = lane.send(message).await;
        }
    }

    /// This side moved to a lane: a tunnel stream's direction ends with `Moved`, and the
    /// rest goes on `lane`.
    fn switch(&mut self, lane: SplitSink<BoxLane, Bytes>) -> io::Result<()> {
        if let Outlet::Stream(stream) = self {
            stream.move_away()?;
            *self = Outlet::Lane(lane);
        }
        Ok(())
    }
}

/// One direction: from `inlet` to `outlet` until the inlet's side closes it (the outlet is
/// then closed) or resets it; every byte read is added to `read`. The inlet switches to
/// its side's lane at a `Moved`, the outlet as soon as its side's lane is there. Lane
/// messages are flushed when no more are waiting, so a fast sender's frames leave in
/// batches.
async fn direction(
    mut inlet: Inlet<'_>,
    mut outlet: Outlet<'_>,
    mut inlet_lane: oneshot::Receiver<SplitStream<BoxLane>>,
    outlet_lane: oneshot::Receiver<SplitSink<BoxLane, Bytes>>,
    read: &AtomicU64,
) -> io::Result<()> {
    let mut turn = TurnCounter::default();
    let mut outlet_lane = Some(outlet_lane);
    loop {
        // Two tunnel streams touch no socket: without this, a direction that always finds
        // a piece and room would keep its thread from every other task.
        tokio::task::consume_budget().await;
        if let Some(lane) = outlet_lane.as_mut().and_then(|l| l.try_recv().ok()) {
            outlet_lane = None;
            outlet.switch(lane)?;
        }
        let piece = match inlet.next().now_or_never() {
            Some(piece) => piece,
            None => {
                outlet.flush().await?;
                tokio::select! {
                    piece = inlet.next() => piece,
                    lane = async { outlet_lane.as_mut()?.await.ok() }, if outlet_lane.is_some() => {
                        outlet_lane = None;
                        if let Some(lane) = lane {
                            outlet.switch(lane)?;
                        }
                        continue;
                    }
                }
            }
        };
        let piece = match piece {
            Ok(piece) => piece,
            Err(error) => {
                // A lane that broke the protocol: the agent on the other side is told.
                if error.kind() == io::ErrorKind::InvalidData {
                    outlet.reset(lane::reset(ResetReason::ProtocolError)).await;
                }
                return Err(error);
            }
        };
        match piece {
            Piece::Data { payload, message } => {
                let len = payload.len();
                read.fetch_add(len as u64, Ordering::Relaxed);
                outlet.put(payload, message).await?;
                turn.moved(len).await;
            }
            Piece::Closed => return outlet.close().await,
            Piece::Moved => {
                // What came on the tunnel leaves before this direction waits for its lane.
                outlet.flush().await?;
                let lane = tokio::time::timeout(MOVE_WAIT, &mut inlet_lane).await;
                let lane = lane.ok().and_then(Result::ok).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "a stream moved to a lane that did not come",
                    )
                })?;
                inlet = Inlet::Lane(lane);
            }
            Piece::Reset(reason, message) => {
                outlet.reset(message).await;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("reset: {reason:?}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use portico_tunnel::{
        memory_pair, Incoming, IncomingStream, Role, Tunnel, TunnelConfig, TunnelHandle,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);
    const SIZE: usize = 3 * 1024 * 1024 + 17;

    /// A relay's end and an agent's end of one tunnel, in memory.
    fn tunnel_pair() -> ((TunnelHandle, Incoming), (TunnelHandle, Incoming)) {
        let (a, b) = memory_pair(64);
        (
            Tunnel::new(a, Role::Relay, TunnelConfig::default()),
            Tunnel::new(b, Role::Device, TunnelConfig::default()),
        )
    }

    async fn next_offer(incoming: &mut Incoming) -> IncomingStream {
        timeout(LIMIT, incoming.next()).await.unwrap().unwrap()
    }

    /// Bytes that differ by seed, so that a mixed-up direction shows.
    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// Writes `send` then half-closes, while reading everything the peer sends.
    async fn exchange(stream: TunnelStream, send: Vec<u8>) -> Vec<u8> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let write = async {
            writer.write_all(&send).await.unwrap();
            writer.shutdown().await.unwrap();
        };
        let read = async {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(write, read);
        got
    }

    /// Two tunnel streams that never move (a linked stream on the node holding the
    /// dialler's tunnel): every byte crosses both ways, each side's half close reaches the
    /// other, and what was read from each side is counted.
    #[tokio::test]
    async fn two_streams_are_joined_both_ways_and_counted() {
        // device A <-> relay (stream a) ==pass== relay (stream b) <-> device B
        let ((_relay_a, mut relay_a_incoming), (device_a, _)) = tunnel_pair();
        let ((relay_b, _), (_device_b, mut device_b_incoming)) = tunnel_pair();
        let opener = device_a.open("mapping:1").unwrap();
        let a = next_offer(&mut relay_a_incoming).await.accept();
        let b = relay_b.open("host:22").unwrap();
        let (a_read, b_read) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counts = (Arc::clone(&a_read), Arc::clone(&b_read));
        let joined = tokio::spawn(async move {
            let (a, b) = ((Side::Stream(a), never()), (Side::Stream(b), never()));
            pass(a, b, &counts.0, &counts.1).await
        });
        let dialled = next_offer(&mut device_b_incoming).await.accept();
        let (opener_got, dialled_got) = timeout(LIMIT, async {
            tokio::join!(
                exchange(opener, pattern(3, SIZE)),
                exchange(dialled, pattern(4, SIZE / 2))
            )
        })
        .await
        .unwrap();
        assert!(
            dialled_got == pattern(3, SIZE),
            "the dialler got other bytes"
        );
        assert!(
            opener_got == pattern(4, SIZE / 2),
            "the opener got other bytes"
        );
        timeout(LIMIT, joined).await.unwrap().unwrap().unwrap();
        assert_eq!(a_read.load(Ordering::Relaxed), SIZE as u64);
        assert_eq!(b_read.load(Ordering::Relaxed), (SIZE / 2) as u64);
    }

    /// A side reset ends the join with an error, and the join's end resets the other side,
    /// so its agent does not keep a connection open for nothing.
    #[tokio::test]
    async fn a_reset_on_one_side_ends_the_join_and_reaches_the_other_side() {
        let ((_relay_a, mut relay_a_incoming), (device_a, _)) = tunnel_pair();
        let ((relay_b, _), (_device_b, mut device_b_incoming)) = tunnel_pair();
        let mut opener = device_a.open("mapping:1").unwrap();
        let a = next_offer(&mut relay_a_incoming).await.accept();
        let b = relay_b.open("host:22").unwrap();
        let joined = tokio::spawn(async move {
            let uncounted = (AtomicU64::new(0), AtomicU64::new(0));
            let (a, b) = ((Side::Stream(a), never()), (Side::Stream(b), never()));
            pass(a, b, &uncounted.0, &uncounted.1).await
        });
        let dialled = next_offer(&mut device_b_incoming).await.accept();
        // Dropped before closing: the stream is reset, and the join must not wait on.
        drop(dialled);
        let ended = timeout(LIMIT, joined).await.unwrap().unwrap();
        assert!(ended.is_err(), "a reset side ends the join with an error");
        let mut buf = [0u8; 16];
        let read = timeout(LIMIT, opener.read(&mut buf)).await.unwrap();
        assert!(
            read.is_err(),
            "the opener sees its stream reset, not {read:?}"
        );
    }
}
