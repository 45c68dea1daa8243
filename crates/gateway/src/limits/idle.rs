//! The idle timeout of a client connection (GW-13): when no byte moved either way for
//! `idle_timeout`, the connection is closed, whether it is a keep-alive connection with
//! nothing to do, a response whose body stalls, or an upgraded WebSocket.
//!
//! [`IdleIo`] sits right on the client's socket (below the head guard and below an
//! upgrade, which keeps the same IO) and notes on an [`IdleClock`] that bytes moved. A
//! [`watch`] future looks at the clock eight times per timeout; on expiry the IO fails
//! every read and write from then on, which ends an upgraded relay, and the HTTP
//! connection is dropped by its owner. While a request waits for its backend's response
//! head the clock stands still: that wait has its own deadline (`proxy.response_timeout`).
//!
//! Noting the time of every read and write cost a WebSocket round trip about a twentieth
//! of its instructions (four reads of the clock); noting only that bytes moved costs a
//! flag, and the watcher reads the clock. The price is precision: a connection is closed
//! between `idle_timeout` and an eighth more after its last byte.

use crate::body::BoxError;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Whether a connection moved bytes since the watcher last looked, and whether it is
/// waiting on a backend.
pub struct IdleClock {
    /// Set when a byte is read or written; taken by the watcher at each look.
    moved: AtomicBool,
    /// Requests whose whole body was read and whose response head is awaited.
    waiting: AtomicUsize,
    expired: AtomicBool,
    /// The connection was handed to a WebSocket relay (see [`IdleClock::mark_upgraded`]).
    upgraded: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
    /// Signalled when the IO is dropped, so that a watcher can stop.
    closed: Notify,
}

impl IdleClock {
    pub fn new() -> Arc<IdleClock> {
        Arc::new(IdleClock {
            moved: AtomicBool::new(true),
            waiting: AtomicUsize::new(0),
            expired: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            closed: Notify::new(),
        })
    }

    fn touch(&self) {
        // Loaded first: while the flag is set, a busy connection writes nothing shared.
        if !self.moved.load(Ordering::Relaxed) {
            self.moved.store(true, Ordering::Relaxed);
        }
    }

    /// Whether bytes moved (or a response wait ended) since the last call.
    fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }

    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    /// Marks the connection as upgraded, before its IO goes to a relay: from then on a
    /// shutdown is a plain one. The relay reads the client itself until the client's
    /// end, so the lingering close has nothing to do there, and its reads would take the
    /// relay's turn to be woken for the client's input.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        self.reader.wake();
        self.writer.wake();
    }

    /// A request arrived. Its response wait starts once its body has been read: at once
    /// for a request without one, else when the body returned by
    /// [`ResponseWait::watch_body`] ends.
    pub fn request_started(self: &Arc<Self>, body_empty: bool) -> ResponseWait {
        if body_empty {
            self.waiting.fetch_add(1, Ordering::AcqRel);
            return ResponseWait {
                clock: self.clone(),
                phase: None,
            };
        }
        ResponseWait {
            clock: self.clone(),
            phase: Some(Arc::new(AtomicU8::new(RECEIVING))),
        }
    }
}

const RECEIVING: u8 = 0;
const WAITING: u8 = 1;
const ANSWERED: u8 = 2;

/// One request's part in pausing the clock; dropping it (when the response head is
/// ready) lets the clock run again from that moment.
pub struct ResponseWait {
    clock: Arc<IdleClock>,
    /// How far the request is, shared with its body's watch; none for a request without
    /// a body, which waits for its response from the start (and most requests, with no
    /// body, cost no allocation here).
    phase: Option<Arc<AtomicU8>>,
}

impl ResponseWait {
    /// `body`, telling the clock when it has been read to its end. A request started
    /// without a body has nothing to tell.
    pub fn watch_body<B>(&self, body: B) -> BodyEnd<B> {
        BodyEnd {
            inner: body,
            clock: self.clock.clone(),
            phase: self
                .phase
                .clone()
                .unwrap_or_else(|| Arc::new(AtomicU8::new(WAITING))),
        }
    }
}

fn body_done(clock: &IdleClock, phase: &AtomicU8) {
    if phase
        .compare_exchange(RECEIVING, WAITING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        clock.waiting.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for ResponseWait {
    fn drop(&mut self) {
        let phase = match &self.phase {
            Some(phase) => phase.swap(ANSWERED, Ordering::AcqRel),
            None => WAITING,
        };
        if phase == WAITING {
            self.clock.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        self.clock.touch();
    }
}

/// A request body that tells the clock when it ends.
pub struct BodyEnd<B> {
    inner: B,
    clock: Arc<IdleClock>,
    phase: Arc<AtomicU8>,
}

impl<B> http_body::Body for BodyEnd<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() || this.inner.is_end_stream() {
            body_done(&this.clock, &this.phase);
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How often the watcher looks at the clock per idle timeout: a connection is closed
/// between the timeout and an eighth more after its last byte.
const LOOKS_PER_TIMEOUT: u32 = 8;

/// Resolves when nothing moved on the connection for the timeout `timeout()` returns
/// (read at each look, so a reconfigured timeout applies to open connections), and marks
/// the clock expired; or when the IO is dropped, without marking it.
pub async fn watch(clock: Arc<IdleClock>, timeout: impl Fn() -> Duration) {
    let closed = clock.closed.notified();
    tokio::pin!(closed);
    // When a look last found the connection busy: its last byte moved at most one look
    // interval before.
    let mut busy_at = Instant::now();
    loop {
        let now = Instant::now();
        if clock.take_moved() || clock.waiting.load(Ordering::Acquire) > 0 {
            busy_at = now;
        }
        let timeout = timeout();
        let left = match timeout.checked_sub(now.saturating_duration_since(busy_at)) {
            Some(left) if !left.is_zero() => left,
            _ => {
                clock.expire();
                return;
            }
        };
        let look = (timeout / LOOKS_PER_TIMEOUT).max(Duration::from_millis(1));
        tokio::select! {
            _ = tokio::time::sleep(left.min(look)) => {}
            _ = closed.as_mut() => return,
        }
    }
}

/// The client's IO, noting every byte on the clock, and failing once it has expired.
pub struct IdleIo<IO> {
    io: IO,
    clock: Arc<IdleClock>,
}

impl<IO> IdleIo<IO> {
    pub fn new(io: IO, clock: Arc<IdleClock>) -> IdleIo<IO> {
        clock.touch();
        IdleIo { io, clock }
    }
}

impl<IO> Drop for IdleIo<IO> {
    fn drop(&mut self) {
        self.clock.closed.notify_one();
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle timeout")
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.clock.is_expired() {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.clock.touch();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.clock.reader.register(cx.waker());
                // Expired between the check and the registration: no wake-up would come.
                if this.clock.is_expired() {
                    return Poll::Ready(Err(timed_out()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> IdleIo<IO> {
    fn written(
        &self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.clock.touch();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                self.clock.writer.register(cx.waker());
                if self.clock.is_expired() {
                    return Poll::Ready(Err(timed_out()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.clock.is_expired() {
            return Poll::Ready(Err(timed_out()));
        }
        let result = Pin::new(&mut self.io).poll_write(cx, data);
        self.written(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.clock.is_expired() {
            return Poll::Ready(Err(timed_out()));
        }
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.written(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_and_fails_its_reads() {
        let (client, server) = tokio::io::duplex(64);
        let clock = IdleClock::new();
        let mut io = IdleIo::new(server, clock.clone());
        let watcher = tokio::spawn(watch(clock.clone(), || Duration::from_secs(1)));
        let mut byte = [0u8; 1];
        let err = io.read(&mut byte).await.expect_err("expired");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(clock.is_expired());
        watcher.await.unwrap();
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_stands_still_while_a_response_head_is_awaited() {
        let (mut client, server) = tokio::io::duplex(64);
        let clock = IdleClock::new();
        let mut io = IdleIo::new(server, clock.clone());
        let wait = clock.request_started(true);
        let watcher = tokio::spawn(watch(clock.clone(), || Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!clock.is_expired());
        drop(wait);
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(!clock.is_expired());
        // Closed within an eighth of the timeout after it ran out.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(clock.is_expired());
        watcher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_body_counts_for_the_wait_only_once_it_has_been_read() {
        use http_body_util::BodyExt;
        let clock = IdleClock::new();
        let wait = clock.request_started(false);
        let body = wait.watch_body(http_body_util::Full::new(Bytes::from_static(b"body")));
        // While the body is unread the client owes bytes: the wait has not started.
        assert_eq!(clock.waiting.load(Ordering::Acquire), 0);
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(&read[..], b"body");
        assert_eq!(clock.waiting.load(Ordering::Acquire), 1);
        drop(wait);
        assert_eq!(clock.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_a_body_waits_from_its_start_and_once() {
        let clock = IdleClock::new();
        let wait = clock.request_started(true);
        assert_eq!(clock.waiting.load(Ordering::Acquire), 1);
        // A watch asked for anyway has nothing to add when its body ends.
        let body = wait.watch_body(http_body_util::Empty::<Bytes>::new());
        http_body_util::BodyExt::collect(body).await.unwrap();
        assert_eq!(clock.waiting.load(Ordering::Acquire), 1);
        drop(wait);
        assert_eq!(clock.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_does_not_expire_and_is_closed_within_an_eighth_after_its_last_byte()
    {
        let (mut client, server) = tokio::io::duplex(64);
        let clock = IdleClock::new();
        let mut io = IdleIo::new(server, clock.clone());
        let watcher = tokio::spawn(watch(clock.clone(), || Duration::from_secs(1)));
        let mut byte = [0u8; 1];
        // A byte every 300 ms for 6 s: never idle for the timeout.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(b"x").await.unwrap();
            io.read_exact(&mut byte).await.unwrap();
            assert!(!clock.is_expired());
        }
        let last = Instant::now();
        let err = io.read(&mut byte).await.expect_err("expired");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let idle = last.elapsed();
        assert!(
            idle >= Duration::from_secs(1) && idle <= Duration::from_millis(1125),
            "{idle:?}"
        );
        watcher.await.unwrap();
    }
}
