//! Carrying a tunnel stream's or a lane's bytes to a TCP connection, as the agents do for
//! every stream they open or dial (the relay's joins of two streams are in its `pump`).
//!
//! What a stream receives is already held in the messages it arrived in, so it is passed
//! on as slices of them ([`TunnelStream::poll_read_bytes`]) instead of being copied into a
//! buffer first; bytes read from a TCP connection are handed to the tunnel in the buffer
//! they were read into ([`TunnelStream::poll_write_bytes`]). [`own_buffer`] and
//! [`write_all`] serve the relay too, which passes a stream's pieces on as they came. Nor does a
//! waiting stream hold a buffer: a read buffer is taken only once the connection has
//! something to read.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use portico_fair::TurnCounter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::frame::HEADER_LEN;
use crate::lane::{self, BoxLane, LaneIo, LANE_PIECE, MOVE_WAIT};
use crate::tunnel::TunnelStream;

/// The most read from a TCP connection at once: one `Data` frame's worth when the peer
/// accepts frames this large (it declares up to 1 MiB; 256 KiB by default), so that a bulk
/// transfer moves in few frames.
pub const TCP_PIECE: usize = 64 * 1024;

/// A piece smaller than this is copied into a buffer of its own size before it is queued:
/// a slice would keep alive the whole buffer it came from (a read buffer of `TCP_PIECE`, or
/// a received message, 256 KiB by default and up to the transport's largest) while it waits
/// for its turn. At this size the copy costs little. A piece read from TCP then keeps at most
/// four times its bytes allocated; a larger slice of a received message keeps the whole
/// message, as the stream's receive queue did before. The outgoing limits bound how much
/// waits either way.
const COPY_BELOW: usize = TCP_PIECE / 4;

/// Carries bytes both ways between `tcp` and `stream` until both directions ended: each
/// side's end is passed on as a half close. The first error ends both directions.
pub async fn join_tcp(tcp: &mut TcpStream, stream: &TunnelStream) -> io::Result<()> {
    join_tcp_moving(tcp, stream, std::future::pending(), None).await
}

/// [`join_tcp`] for a stream that may move to a lane: once `lane` yields one (its `Moved`
/// already sent or read, `crate::lane`), this side ends its direction on the tunnel with
/// a `Moved` and writes the rest on the lane, and reads the tunnel until the peer's
/// `Moved`, then the lane. `keep_alive`: the lane's pings while its reader waits. On the
/// lane, each direction carries its bytes as [`join_tcp_lane`] does, without copies.
pub async fn join_tcp_moving(
    tcp: &mut TcpStream,
    stream: &TunnelStream,
    lane: impl Future<Output = BoxLane>,
    keep_alive: Option<Duration>,
) -> io::Result<()> {
    let (mut from_tcp, mut to_tcp) = tcp.split();
    // Both directions use the lane once it is here. They are polled in turn by this one
    // task and lock it only within a poll, so the lock is never contended.
    let shared = Mutex::new(None::<LaneIo>);
    // Told when the lane is here: the direction that writes on it and the one that reads it.
    let (writer_tx, writer_rx) = oneshot::channel();
    let (reader_tx, reader_rx) = oneshot::channel();
    let handover = async {
        let lane = LaneIo::new(lane.await, keep_alive);
        *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(lane);
        let _ = writer_tx.send(());
        let _ = reader_tx.send(());
        std::future::pending::<std::convert::Infallible>().await
    };
    // The tunnel's streams are counted by the tunnel; nothing counts these.
    let uncounted = AtomicU64::new(0);
    let upstream = async {
        // Taken once the connection is readable, and dropped after each read: a waiting
        // connection holds no buffer.
        let mut buf = BytesMut::new();
        let mut turn = TurnCounter::default();
        let mut writer_rx = Some(writer_rx);
        loop {
            tokio::select! {
                biased;
                here = async { writer_rx.as_mut()?.await.ok() }, if writer_rx.is_some() => {
                    writer_rx = None;
                    if here.is_some() {
                        stream.move_away()?;
                        break;
                    }
                }
                readable = from_tcp.readable() => readable?,
            }
            buf.reserve(TCP_PIECE);
            match from_tcp.try_read_buf(&mut buf) {
                Ok(0) => return stream.close(),
                Ok(n) => {
                    write_all(stream, own_buffer(std::mem::take(&mut buf).freeze())).await?;
                    turn.moved(n).await;
                }
                // Readiness was stale: keep the buffer for the read that follows.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let mut up = Upstream::default();
        poll_fn(|cx| with_lane(&shared, |lane| up.poll(cx, &mut from_tcp, lane, &uncounted))).await
    };
    let downstream = async {
        let mut turn = TurnCounter::default();
        loop {
            let piece = poll_fn(|cx| stream.poll_read_bytes(cx, usize::MAX)).await?;
            if piece.is_empty() {
                break;
            }
            to_tcp.write_all(&piece).await?;
            turn.moved(piece.len()).await;
        }
        if !stream.moved_in() {
            return to_tcp.shutdown().await;
        }
        let here = tokio::time::timeout(MOVE_WAIT, reader_rx).await;
        here.ok().and_then(Result::ok).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the stream moved to a lane that did not come",
            )
        })?;
        let mut down = Downstream::default();
        poll_fn(|cx| with_lane(&shared, |lane| down.poll(cx, &mut to_tcp, lane, &uncounted))).await
    };
    tokio::select! {
        joined = async { tokio::try_join!(upstream, downstream).map(|_| ()) } => joined,
        never = handover => match never {},
    }
}

/// Runs `f` on the lane of [`join_tcp_moving`], locked for that call only.
fn with_lane<R>(shared: &Mutex<Option<LaneIo>>, f: impl FnOnce(&mut LaneIo) -> R) -> R {
    let mut lane = shared.lock().unwrap_or_else(PoisonError::into_inner);
    f(lane
        .as_mut()
        .expect("a direction moves once the lane is here"))
}

/// Carries bytes both ways between a local connection and a lane's stream until both
/// directions ended, each end passed on as a half close, adding every byte that moves to
/// `moved`; the first error ends both. What is read from `tcp` goes into a buffer that
/// becomes the `Data` frame as it is, and what the lane delivers is written to `tcp` from
/// the frame it came in: neither direction copies the bytes in between (as
/// `copy_bidirectional` over [`LaneIo`]'s `AsyncRead` and `AsyncWrite` does, twice).
pub async fn join_tcp_lane<T>(tcp: &mut T, lane: &mut LaneIo, moved: &AtomicU64) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = Upstream::default();
    let mut down = Downstream::default();
    poll_fn(|cx| {
        let up_done = up.poll(cx, tcp, lane, moved)?.is_ready();
        let down_done = down.poll(cx, tcp, lane, moved)?.is_ready();
        match up_done && down_done {
            true => Poll::Ready(Ok(())),
            false => Poll::Pending,
        }
    })
    .await
}

/// `join_tcp_lane`'s direction from the connection to the lane.
#[derive(Default)]
struct Upstream {
    /// The buffer being read into ([`lane::data_buffer`]), kept while the connection has
    /// nothing to read; once it holds bytes, the frame waiting for the lane's room.
    buffer: Option<BytesMut>,
    read_ended: bool,
    done: bool,
}

impl Upstream {
    fn poll<T: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        tcp: &mut T,
        lane: &mut LaneIo,
        moved: &AtomicU64,
    ) -> Poll<io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            let buffer = self
                .buffer
                .get_or_insert_with(|| lane::data_buffer(LANE_PIECE));
            if buffer.len() > HEADER_LEN {
                ready!(lane.poll_ready_to_send(cx))?;
                lane.start_send_data(self.buffer.take().expect("the buffer holding bytes"))?;
                continue;
            }
            if self.read_ended {
                ready!(Pin::new(&mut *lane).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut *tcp), cx, buffer)? {
                Poll::Ready(0) => self.read_ended = true,
                Poll::Ready(n) => {
                    moved.fetch_add(n as u64, Ordering::Relaxed);
                }
                // Nothing more to read for now: what the lane queued goes out.
                Poll::Pending => {
                    ready!(Pin::new(&mut *lane).poll_flush(cx))?;
                    return Poll::Pending;
                }
            }
        }
    }
}

/// `join_tcp_lane`'s direction from the lane to the connection.
#[derive(Default)]
struct Downstream {
    /// What the lane delivered and the connection has not taken yet.
    piece: Bytes,
    done: bool,
}

impl Downstream {
    fn poll<T: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        tcp: &mut T,
        lane: &mut LaneIo,
        moved: &AtomicU64,
    ) -> Poll<io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            while !self.piece.is_empty() {
                let n = ready!(Pin::new(&mut *tcp).poll_write(cx, &self.piece))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.piece.advance(n);
            }
            let piece = match lane.poll_read_bytes(cx)? {
                Poll::Ready(piece) => piece,
                Poll::Pending => {
                    ready!(Pin::new(&mut *tcp).poll_flush(cx))?;
                    return Poll::Pending;
                }
            };
            if piece.is_empty() {
                ready!(Pin::new(&mut *tcp).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            moved.fetch_add(piece.len() as u64, Ordering::Relaxed);
            self.piece = piece;
        }
    }
}

/// `piece`, copied into a buffer of its own if it is small (`COPY_BELOW`).
pub fn own_buffer(piece: Bytes) -> Bytes {
    match piece.len() < COPY_BELOW {
        true => Bytes::copy_from_slice(&piece),
        false => piece,
    }
}

/// Queues all of `data` on `stream`, waiting for credit and room as needed.
pub async fn write_all(stream: &TunnelStream, mut data: Bytes) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| stream.poll_write_bytes(cx, &data)).await?;
        data.advance(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::time::timeout;

    use super::*;
    use crate::tunnel::{memory_pair, Incoming, Tunnel, TunnelHandle};
    use crate::{Role, TunnelConfig};

    const LIMIT: Duration = Duration::from_secs(60);
    const SIZE: usize = 3 * 1024 * 1024 + 17;

    fn tunnel_pair() -> ((TunnelHandle, Incoming), (TunnelHandle, Incoming)) {
        let (a, b) = memory_pair(64);
        (
            Tunnel::new(a, Role::Relay, TunnelConfig::default()),
            Tunnel::new(b, Role::Device, TunnelConfig::default()),
        )
    }

    /// Bytes that differ by seed, so that a mixed-up direction shows.
    fn pattern(seed: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// Writes `send` then half-closes, while reading everything the peer sends.
    async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        io: S,
        send: Vec<u8>,
    ) -> Vec<u8> {
        let (mut reader, mut writer) = tokio::io::split(io);
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
        drop(reader.unsplit(writer));
        got
    }

    #[tokio::test]
    async fn a_tcp_connection_and_a_stream_exchange_both_ways_with_half_closes() {
        let ((relay, _), (_device, mut device_incoming)) = tunnel_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
            exchange(tcp, pattern(1, SIZE)).await
        });
        let (mut accepted, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        let stream = relay.open("mapping:1").unwrap();
        let joined = tokio::spawn(async move { join_tcp(&mut accepted, &stream).await });
        let far = next_offer(&mut device_incoming).await.accept();
        let far_got = timeout(LIMIT, exchange(far, pattern(2, SIZE)))
            .await
            .unwrap();
        let client_got = timeout(LIMIT, client).await.unwrap().unwrap();
        assert!(
            far_got == pattern(1, SIZE),
            "the tunnel side got other bytes"
        );
        assert!(
            client_got == pattern(2, SIZE),
            "the TCP side got other bytes"
        );
        timeout(LIMIT, joined).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_reset_stream_ends_its_tcp_join_and_closes_the_connection() {
        let ((relay, _), (_device, mut device_incoming)) = tunnel_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut accepted, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        let stream = relay.open("mapping:1").unwrap();
        let joined = tokio::spawn(async move {
            let ended = join_tcp(&mut accepted, &stream).await;
            // As the agents do: the connection is dropped when the join ends.
            drop(accepted);
            ended
        });
        drop(next_offer(&mut device_incoming).await.accept());
        let ended = timeout(LIMIT, joined).await.unwrap().unwrap();
        assert!(ended.is_err(), "a reset stream ends the join with an error");
        let mut buf = [0u8; 16];
        let read = timeout(LIMIT, client.read(&mut buf)).await.unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the client's connection ends, not {read:?}"
        );
    }

    /// The far side of a stream that moves: as the relay does it, it ends its direction on
    /// the tunnel with `Moved` once the lane is there and writes the rest on the lane, and
    /// reads the tunnel up to the peer's `Moved`, then the lane.
    async fn far_side_moving(
        stream: TunnelStream,
        lane: crate::lane::BoxLane,
        send: Vec<u8>,
        moved_after: usize,
    ) -> Vec<u8> {
        let mut lane = LaneIo::new(lane, None);
        let mut got = Vec::new();
        let mut stream = stream;
        let (before, after) = send.split_at(moved_after);
        stream.write_all(before).await.unwrap();
        stream.move_away().unwrap();
        let (mut lane_reader, mut lane_writer) = tokio::io::split(&mut lane);
        let write = async {
            lane_writer.write_all(after).await.unwrap();
            lane_writer.shutdown().await.unwrap();
        };
        let read = async {
            stream.read_to_end(&mut got).await.unwrap();
            assert!(stream.moved_in(), "the agent's direction moved");
            lane_reader.read_to_end(&mut got).await.unwrap();
        };
        tokio::join!(write, read);
        got
    }

    #[tokio::test]
    async fn a_stream_moves_to_a_lane_midway_and_every_byte_arrives_once_in_order() {
        let ((relay, mut relay_incoming), (device, _)) = tunnel_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
            exchange(tcp, pattern(1, SIZE)).await
        });
        let (mut accepted, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        let stream = device.open("session:1/listener:0").unwrap();
        let (agent_lane, relay_lane) = crate::lane::memory_pair();
        let (give_lane, lane) = oneshot::channel::<crate::lane::BoxLane>();
        let joined = tokio::spawn(async move {
            let lane = async { lane.await.unwrap() };
            join_tcp_moving(&mut accepted, &stream, lane, None).await
        });
        let mut far = next_offer(&mut relay_incoming).await.accept();
        // Some bytes travel on the tunnel before the lane comes.
        let mut first = [0u8; 1000];
        timeout(LIMIT, far.read_exact(&mut first))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&first[..], &pattern(1, SIZE)[..1000]);
        give_lane.send(agent_lane).ok().unwrap();
        let far_got = timeout(
            LIMIT,
            far_side_moving(far, relay_lane, pattern(2, SIZE), SIZE / 3),
        )
        .await
        .unwrap();
        let client_got = timeout(LIMIT, client).await.unwrap().unwrap();
        assert!(
            [&first[..], &far_got[..]].concat() == pattern(1, SIZE),
            "the far side got other bytes"
        );
        assert!(client_got == pattern(2, SIZE), "the client got other bytes");
        timeout(LIMIT, joined).await.unwrap().unwrap().unwrap();
        // Both directions ended with a `Moved`: the stream was forgotten without a reset.
        timeout(LIMIT, async {
            while relay.stream_count() + device.stream_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    }

    /// A local connection joined to a lane's stream over a framed lane: megabytes each way
    /// arrive intact, each side's end reaches the other as a half close, and every byte
    /// that moved is counted. The far end reads and writes the lane through `LaneIo`'s
    /// copying `AsyncRead` and `AsyncWrite`, so both kinds of frames meet.
    #[tokio::test]
    async fn a_tcp_connection_and_a_lane_exchange_both_ways_with_half_closes_and_counts() {
        use crate::lane::framed::FramedLane;
        let (near, far) = tokio::io::duplex(64 * 1024);
        let near: BoxLane = Box::pin(FramedLane::new(near, Bytes::new()));
        let far: BoxLane = Box::pin(FramedLane::new(far, Bytes::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
            exchange(tcp, pattern(1, SIZE)).await
        });
        let peer = tokio::spawn(exchange(LaneIo::new(far, None), pattern(2, SIZE + 5)));
        let (mut accepted, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        let moved = AtomicU64::new(0);
        let mut lane = LaneIo::new(near, None);
        timeout(LIMIT, join_tcp_lane(&mut accepted, &mut lane, &moved))
            .await
            .unwrap()
            .unwrap();
        let from_lane = timeout(LIMIT, client).await.unwrap().unwrap();
        let from_tcp = timeout(LIMIT, peer).await.unwrap().unwrap();
        assert!(
            from_lane == pattern(2, SIZE + 5),
            "the lane's bytes arrived intact"
        );
        assert!(
            from_tcp == pattern(1, SIZE),
            "the connection's bytes arrived intact"
        );
        assert_eq!(moved.load(Ordering::Relaxed), (2 * SIZE + 5) as u64);
    }

    /// A lane that resets its stream ends the join with the reset, and the local
    /// connection is not told of a clean end.
    #[tokio::test]
    async fn a_reset_lane_ends_its_tcp_join_with_an_error() {
        let (near, mut far) = crate::lane::memory_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut accepted, _) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        use futures_util::SinkExt;
        far.send(lane::data(b"some bytes")).await.unwrap();
        far.send(lane::reset(crate::ResetReason::Refused))
            .await
            .unwrap();
        let moved = AtomicU64::new(0);
        let mut lane = LaneIo::new(near, None);
        let error = timeout(LIMIT, join_tcp_lane(&mut accepted, &mut lane, &moved))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(moved.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn small_pieces_get_a_buffer_of_their_own_and_large_ones_keep_theirs() {
        let buffer = Bytes::from(vec![5u8; TCP_PIECE]);
        let small = own_buffer(buffer.slice(..100));
        assert_eq!(&small[..], &buffer[..100]);
        assert_ne!(small.as_ptr(), buffer.as_ptr(), "a small piece is copied");
        let large = own_buffer(buffer.slice(..COPY_BELOW));
        assert_eq!(
            large.as_ptr(),
            buffer.as_ptr(),
            "a large piece is passed on as it is"
        );
    }

    async fn next_offer(incoming: &mut Incoming) -> crate::IncomingStream {
        timeout(LIMIT, incoming.next()).await.unwrap().unwrap()
    }
}
