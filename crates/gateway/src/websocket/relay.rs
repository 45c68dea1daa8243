//! The relay of one WebSocket after both sides switched protocols (GW-21, GW-23, GW-24).
//!
//! Two pumps copy bytes, one per direction, exactly as they arrive: frames are never
//! decoded or re-encoded, whatever the subprotocol. Each pump follows the frame headers
//! ([`FrameTracker`]) so that the gateway's own frames go in only between two frames: pings
//! to the client every `websocket_ping_interval`, a 1001 close to both sides at shutdown,
//! and a 1008 close when the session the WebSocket was opened in ends; after a close the
//! relay waits a bounded time for the close replies.
//!
//! For a WebSocket opened in a session, the pumps mark the peers' traffic, so that it
//! keeps the session alive ([`crate::auth::session_watch`]).
//!
//! The client's pongs that answer the gateway's pings are taken out of the stream: the
//! backend never sent those pings. Any other pong passes.

use super::frames::{
    control_frame, unmasked_payload, FrameHeader, FrameTracker, OPCODE_CLOSE, OPCODE_PING,
    OPCODE_PONG,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The close code for "going away" (RFC 6455 §7.4.1), with the reason the peers see.
const GOING_AWAY: Closing = Closing {
    code: 1001,
    reason: "Portico is shutting down",
};
/// "Policy violation" (§7.4.1): the session that authorised the WebSocket is over.
const SESSION_ENDED: Closing = Closing {
    code: 1008,
    reason: "The session ended",
};

/// Gateway pings carry this prefix and a sequence number, so their pongs are recognised.
const PING_PREFIX: &[u8] = b"portico-ping-";
/// Pings whose pong may still come; older ones are forgotten (a client may answer only the
/// latest ping, §5.5.3).
const OUTSTANDING_PINGS: usize = 8;
/// The longest pong the relay holds back to look at: a control frame's payload is at most
/// 125 bytes (§5.5); a longer "pong" is a protocol error the backend will see.
const MAX_HELD_PONG: usize = 2 + 4 + 125;
/// How often a relay without pings looks whether pings were switched on.
const PING_RECHECK: Duration = Duration::from_secs(5);
/// Bytes read at once per direction while messages are small. Most WebSockets are idle
/// most of the time and each holds two of these for its whole life.
const SMALL_READ: usize = 512;
/// The most read at once, after reads kept filling the buffer: large messages move in
/// fewer, larger reads.
const LARGE_READ: usize = 16 * 1024;

/// Settings read from the gateway's current configuration when they are needed.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    pub ping_interval: Option<Duration>,
    /// How long the relay waits for the close replies after sending its own closes.
    pub close_wait: Duration,
}

/// A close frame's code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Closing {
    code: u16,
    reason: &'static str,
}

/// A frame the gateway puts into a direction at the next frame boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injection {
    Ping(u64),
    Close(Closing),
}

/// The session a WebSocket was opened in, as the relay sees it.
pub struct SessionWatch {
    /// Resolves when the session is over; the relay then closes with 1008.
    pub over: BoxFuture<'static, ()>,
    /// Set by the relay whenever the peers exchange something.
    pub activity: Arc<AtomicBool>,
}

/// Which peer a pump writes to; frames to the backend are masked, as a client's must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toward {
    Client,
    Backend,
}

/// The gateway's frames waiting for a frame boundary in one direction (at most a ping
/// and a close). Its pump looks at it on every turn, so looking is one atomic load.
#[derive(Default)]
struct Inbox {
    queue: Mutex<VecDeque<Injection>>,
    filled: AtomicBool,
    pump: AtomicWaker,
}

impl Inbox {
    fn put(&self, injection: Injection) {
        self.queue().push_back(injection);
        self.filled.store(true, Ordering::Release);
        self.pump.wake();
    }

    fn is_empty(&self) -> bool {
        !self.filled.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<Injection> {
        if self.is_empty() {
            return None;
        }
        let mut queue = self.queue();
        let injection = queue.pop_front();
        self.filled.store(!queue.is_empty(), Ordering::Release);
        injection
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Injection>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the pumps and the controller share.
#[derive(Default)]
struct Shared {
    /// The gateway's frames for the client, respectively the backend.
    to_client: Inbox,
    to_backend: Inbox,
    outstanding_pings: Mutex<VecDeque<u64>>,
    /// The client, respectively the backend, sent a close frame or ended its stream.
    client_done: AtomicBool,
    backend_done: AtomicBool,
    changed: Notify,
    /// Marked on the peers' traffic, for a WebSocket opened in a session.
    activity: Option<Arc<AtomicBool>>,
}

impl Shared {
    fn inbox(&self, toward: Toward) -> &Inbox {
        match toward {
            Toward::Client => &self.to_client,
            Toward::Backend => &self.to_backend,
        }
    }

    fn reader_done(&self, toward: Toward) {
        // A pump toward the backend reads the client, and the other way round.
        match toward {
            Toward::Backend => self.client_done.store(true, Ordering::Release),
            Toward::Client => self.backend_done.store(true, Ordering::Release),
        }
        self.changed.notify_waiters();
    }

    async fn both_done(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.client_done.load(Ordering::Acquire) && self.backend_done.load(Ordering::Acquire)
            {
                return;
            }
            changed.await;
        }
    }

    fn traffic(&self) {
        if let Some(activity) = &self.activity {
            activity.store(true, Ordering::Release);
        }
    }

    fn ping_sent(&self, n: u64) {
        let mut pings = self.pings();
        if pings.len() == OUTSTANDING_PINGS {
            pings.pop_front();
        }
        pings.push_back(n);
    }

    fn expects_pong(&self) -> bool {
        !self.pings().is_empty()
    }

    /// Whether `payload` answers an outstanding gateway ping; if so, that ping and the
    /// ones before it are answered.
    fn take_pong(&self, payload: &[u8]) -> bool {
        let Some(n) = payload
            .strip_prefix(PING_PREFIX)
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return false;
        };
        let mut pings = self.pings();
        if !pings.contains(&n) {
            return false;
        }
        pings.retain(|&p| p > n);
        true
    }

    fn pings(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        self.outstanding_pings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How one of the relay's three parts ended.
enum Ended {
    Pump(io::Result<()>),
    Control,
}

/// Relays between `client` and `backend` until both streams end, a side fails, or, after
/// `closing` fires or the session is over, the close handshake is done or its wait is over.
pub async fn relay<C, B>(
    client: C,
    backend: B,
    closing: CancellationToken,
    settings: impl Fn() -> RelaySettings + Sync,
    session: Option<SessionWatch>,
) where
    C: AsyncRead + AsyncWrite + Send,
    B: AsyncRead + AsyncWrite + Send,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (backend_read, backend_write) = tokio::io::split(backend);
    let (session_over, activity) = match session {
        Some(watch) => (Some(watch.over), Some(watch.activity)),
        None => (None, None),
    };
    let shared = Shared {
        activity,
        ..Shared::default()
    };
    let upstream = Pump::new(client_read, backend_write, Toward::Backend);
    let downstream = Pump::new(backend_read, client_write, Toward::Client);
    // Each part is polled only when it was woken: a message moving one way touches
    // neither the other pump nor the control's timer and shutdown signal.
    let mut parts: FuturesUnordered<BoxFuture<'_, Ended>> = FuturesUnordered::new();
    parts.push(Box::pin(async { Ended::Pump(upstream.run(&shared).await) }));
    parts.push(Box::pin(async {
        Ended::Pump(downstream.run(&shared).await)
    }));
    parts.push(Box::pin(async {
        control(&shared, &closing, session_over, &settings).await;
        Ended::Control
    }));
    let mut pumps_done = 0;
    while let Some(ended) = parts.next().await {
        match ended {
            Ended::Pump(Ok(())) => {
                pumps_done += 1;
                if pumps_done == 2 {
                    break;
                }
            }
            Ended::Pump(Err(e)) => {
                tracing::debug!(error = %e, "websocket relay ended with an error");
                break;
            }
            Ended::Control => {
                tracing::debug!("websocket closed by the gateway");
                break;
            }
        }
    }
}

/// Sends pings while the WebSocket is open; when `closing` fires (1001) or the session is
/// over (1008), sends the closes and waits for the replies. Returns only in those cases.
async fn control(
    shared: &Shared,
    closing: &CancellationToken,
    session_over: Option<BoxFuture<'static, ()>>,
    settings: &impl Fn() -> RelaySettings,
) {
    let mut pings = 0u64;
    let session_over = async {
        match session_over {
            Some(over) => over.await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(session_over);
    let close = loop {
        let interval = settings().ping_interval;
        tokio::select! {
            () = closing.cancelled() => break GOING_AWAY,
            () = &mut session_over => break SESSION_ENDED,
            () = tokio::time::sleep(interval.unwrap_or(PING_RECHECK)) => {
                // A ping still waiting for a frame boundary is enough.
                if interval.is_some() && shared.to_client.is_empty() {
                    pings += 1;
                    shared.to_client.put(Injection::Ping(pings));
                }
            }
        }
    };
    shared.to_client.put(Injection::Close(close));
    shared.to_backend.put(Injection::Close(close));
    let _ = tokio::time::timeout(settings().close_wait, shared.both_done()).await;
}

/// A pump's read buffer: small while the pump waits, growing while reads fill it. An idle
/// WebSocket holds two small ones; a bulk transfer moves in large reads.
struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    fn new() -> Self {
        ReadBuffer(vec![0; SMALL_READ])
    }

    fn filled(&self, n: usize) -> &[u8] {
        &self.0[..n]
    }

    /// Reads from `reader`, or resolves once something waits in `inbox`. The inbox is
    /// looked at first, and its waker registered only when the read has to wait: a pump
    /// moving messages registers once per wait instead of once per message. While the
    /// reader has nothing to give (or yields its thread to other tasks for a turn,
    /// `portico_fair`), the buffer is made small again. (A read that is not ready has
    /// written nothing, and the next may use another buffer.)
    fn read_or_injection<'a, R: AsyncRead + Unpin>(
        &'a mut self,
        reader: &'a mut R,
        inbox: Option<&'a Inbox>,
    ) -> impl Future<Output = Woke> + 'a {
        std::future::poll_fn(move |cx| {
            if inbox.is_some_and(|inbox| !inbox.is_empty()) {
                return Poll::Ready(Woke::Injection);
            }
            let mut space = ReadBuf::new(&mut self.0);
            match Pin::new(&mut *reader).poll_read(cx, &mut space) {
                Poll::Ready(result) => {
                    Poll::Ready(Woke::Read(result.map(|()| space.filled().len())))
                }
                Poll::Pending => {
                    if let Some(inbox) = inbox {
                        inbox.pump.register(cx.waker());
                        // Filled between the look and the registration: no wake-up would come.
                        if !inbox.is_empty() {
                            return Poll::Ready(Woke::Injection);
                        }
                    }
                    if self.0.len() > SMALL_READ {
                        self.0 = vec![0; SMALL_READ];
                    }
                    Poll::Pending
                }
            }
        })
    }

    /// After a read of `n` bytes: one that filled the buffer makes the next one larger.
    fn grow_if_filled(&mut self, n: usize) {
        let size = self.0.len();
        if n == size && size < LARGE_READ {
            self.0 = vec![0; (size * 4).min(LARGE_READ)];
        }
    }
}

/// What a waiting pump was woken for.
enum Woke {
    Read(io::Result<usize>),
    /// The gateway has a frame for this direction.
    Injection,
}

/// One direction of the relay.
struct Pump<R, W> {
    reader: R,
    writer: W,
    toward: Toward,
    tracker: FrameTracker,
    /// A client pong held back until it is known whether it answers a gateway ping.
    held: Option<Vec<u8>>,
    /// A close frame went out on the writer: nothing the gateway adds may follow it.
    close_sent: bool,
    /// The gateway closed this direction: what the reader sends is no longer forwarded,
    /// only watched for the close reply.
    discarding: bool,
}

impl<R, W> Pump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    fn new(reader: R, writer: W, toward: Toward) -> Self {
        Pump {
            reader,
            writer,
            toward,
            tracker: FrameTracker::new(),
            held: None,
            close_sent: false,
            discarding: false,
        }
    }

    async fn run(mut self, shared: &Shared) -> io::Result<()> {
        let mut buf = ReadBuffer::new();
        loop {
            // The gateway's frames go in only between two frames.
            let between_frames = self.tracker.at_boundary() && self.held.is_none();
            let inbox = between_frames.then(|| shared.inbox(self.toward));
            let n = match buf.read_or_injection(&mut self.reader, inbox).await {
                Woke::Injection => {
                    if let Some(injection) = inbox.and_then(Inbox::take) {
                        self.inject(injection, shared).await?;
                    }
                    continue;
                }
                Woke::Read(read) => read?,
            };
            if n == 0 {
                shared.reader_done(self.toward);
                if let Some(held) = self.held.take() {
                    self.forward(&held, shared).await?;
                }
                // The peer ended its stream: end ours towards the other side too.
                let _ = self.writer.shutdown().await;
                return Ok(());
            }
            self.pass(buf.filled(n), shared).await?;
            buf.grow_if_filled(n);
        }
    }

    /// Forwards `chunk`, acting at each frame boundary in it; bytes that are simply
    /// forwarded are written together.
    async fn pass(&mut self, chunk: &[u8], shared: &Shared) -> io::Result<()> {
        let mut pos = 0;
        // `chunk[pending..pos]` is to be forwarded and not written yet.
        let mut pending = 0;
        while pos < chunk.len() {
            if self.toward == Toward::Backend
                && self.tracker.at_boundary()
                && !self.discarding
                && chunk[pos] & 0x0F == OPCODE_PONG
                && shared.expects_pong()
            {
                self.forward(&chunk[pending..pos], shared).await?;
                pending = pos;
                self.held = Some(Vec::new());
            }
            let progress = self.tracker.advance(&chunk[pos..]);
            let piece = &chunk[pos..pos + progress.consumed];
            pos += progress.consumed;
            if let Some(held) = &mut self.held {
                held.extend_from_slice(piece);
                pending = pos;
                self.settle_held(progress.completed, shared).await?;
                continue;
            }
            if self.discarding {
                pending = pos;
            }
            let Some(frame) = progress.completed else {
                continue;
            };
            if frame.opcode == OPCODE_CLOSE {
                shared.reader_done(self.toward);
                if !self.discarding {
                    self.close_sent = true;
                }
            }
            // Between two frames: the gateway's own frames may go in now.
            while let Some(injection) = shared.inbox(self.toward).take() {
                self.forward(&chunk[pending..pos], shared).await?;
                pending = pos;
                self.inject(injection, shared).await?;
            }
        }
        self.forward(&chunk[pending..pos], shared).await?;
        // Over TLS, written bytes may wait in the session until flushed.
        self.writer.flush().await
    }

    /// Decides about a held pong once it is complete (dropped if it answers a gateway
    /// ping), or lets it go when it turns out too long to be one.
    async fn settle_held(
        &mut self,
        completed: Option<FrameHeader>,
        shared: &Shared,
    ) -> io::Result<()> {
        let Some(held) = self.held.as_ref() else {
            return Ok(());
        };
        match completed {
            Some(frame) => {
                let held = self.held.take().unwrap_or_default();
                if !shared.take_pong(&unmasked_payload(&frame, &held)) {
                    self.forward(&held, shared).await?;
                }
            }
            None if held.len() > MAX_HELD_PONG
                || self.tracker.current().is_some_and(|f| f.payload_len > 125) =>
            {
                let held = self.held.take().unwrap_or_default();
                self.forward(&held, shared).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Writes bytes of the peers' frames, which count as the WebSocket's traffic.
    async fn forward(&mut self, bytes: &[u8], shared: &Shared) -> io::Result<()> {
        if !bytes.is_empty() {
            shared.traffic();
        }
        self.writer.write_all(bytes).await
    }

    /// Writes one of the gateway's own frames; the caller is between two frames.
    async fn inject(&mut self, injection: Injection, shared: &Shared) -> io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        let mask = (self.toward == Toward::Backend).then(rand::random::<[u8; 4]>);
        match injection {
            Injection::Ping(n) => {
                let mut payload = PING_PREFIX.to_vec();
                payload.extend_from_slice(n.to_string().as_bytes());
                self.writer
                    .write_all(&control_frame(OPCODE_PING, &payload, mask))
                    .await?;
                shared.ping_sent(n);
            }
            Injection::Close(closing) => {
                let mut payload = closing.code.to_be_bytes().to_vec();
                payload.extend_from_slice(closing.reason.as_bytes());
                self.writer
                    .write_all(&control_frame(OPCODE_CLOSE, &payload, mask))
                    .await?;
                self.close_sent = true;
                self.discarding = true;
            }
        }
        self.writer.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read without an inbox.
    async fn read_from<R: AsyncRead + Unpin>(buf: &mut ReadBuffer, reader: &mut R) -> usize {
        match buf.read_or_injection(reader, None).await {
            Woke::Read(read) => read.unwrap(),
            Woke::Injection => unreachable!("no inbox was given"),
        }
    }

    #[tokio::test]
    async fn the_read_buffer_grows_while_reads_fill_it_and_is_small_while_waiting() {
        let (mut peer, mut reader) = tokio::io::duplex(64 * 1024);
        let mut buf = ReadBuffer::new();
        let mut sizes = Vec::new();
        peer.write_all(&[7; 40_000]).await.unwrap();
        for _ in 0..4 {
            let n = read_from(&mut buf, &mut reader).await;
            assert_eq!(n, buf.0.len(), "a read fills the buffer while bytes wait");
            buf.grow_if_filled(n);
            sizes.push(buf.0.len());
        }
        assert_eq!(sizes, [2048, 8192, LARGE_READ, LARGE_READ]);
        // The rest, then nothing: waiting, the buffer is small again.
        let rest = 40_000 - (512 + 2048 + 8192 + LARGE_READ);
        assert_eq!(read_from(&mut buf, &mut reader).await, rest);
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), read_from(&mut buf, &mut reader)).await;
        assert!(waiting.is_err(), "nothing to read");
        assert_eq!(buf.0.len(), SMALL_READ);
        peer.write_all(b"hello").await.unwrap();
        assert_eq!(read_from(&mut buf, &mut reader).await, 5);
        assert_eq!(buf.filled(5), b"hello");
    }
}
