//! One Bayeux WebSocket: each text frame is a request (a message array or object) whose
//! reply array goes back as one text frame.
//!
//! Frames are processed in the order they came (a subscribe then an unsubscribe must not
//! swap), but a held `/meta/connect` must not stop the socket's later frames (a subscribe,
//! or the disconnect that releases it): so every frame is processed in its own task, which
//! waits for the frames before it except those with a connect. Replies go through a
//! bounded outbox to the one writer. At most [`FRAMES_IN_FLIGHT`] frames are in flight:
//! beyond that the socket is not read (TCP pushes back on the client).
//!
//! The server pings every `ws_ping_interval` (firewalls and NATs drop idle flows, DC-3);
//! a socket from which nothing at all (not even a pong) came for two intervals is closed.
//! Closing a socket never ends the client's Bayeux session: the engine keeps it for its
//! grace period, and the client may carry on over a new socket or a poll.

use bytes::Bytes;
use futures_util::future::{self, BoxFuture, Shared};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::Endpoint;
use crate::bayeux::{Bayeux, Incoming, Message as BayeuxMessage};

/// How many frames of one socket may be processed at once.
pub(super) const FRAMES_IN_FLIGHT: usize = 16;
/// How many frames may wait for the writer.
const OUTBOX: usize = 16;
/// How long the close frame may take to go out once the socket is ending.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The shortest ping interval honoured (a zero interval would be a busy loop).
const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);

/// What answers a frame's messages: the endpoint's engine (a scripted one in tests).
pub(super) trait Answerer: Send + Sync + 'static {
    fn answer(
        &self,
        messages: Vec<BayeuxMessage>,
        incoming: Arc<Incoming>,
    ) -> impl Future<Output = Vec<Value>> + Send + 'static;
}

impl Answerer for Bayeux {
    fn answer(
        &self,
        messages: Vec<BayeuxMessage>,
        incoming: Arc<Incoming>,
    ) -> impl Future<Output = Vec<Value>> + Send + 'static {
        let bayeux = self.clone();
        async move { bayeux.process(messages, &incoming).await }
    }
}

/// The limits one socket runs under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub ping_interval: Duration,
    /// The longest one frame's answer may take (beyond the engine's longest hold).
    pub deadline: Duration,
    pub max_message: usize,
}

impl Limits {
    pub fn of(endpoint: &Endpoint) -> Limits {
        Limits {
            ping_interval: endpoint.options.ws_ping_interval.max(MIN_PING_INTERVAL),
            deadline: endpoint.engine_deadline(),
            max_message: endpoint.options.max_body,
        }
    }
}

/// Serves the socket until the client goes, falls silent, or breaks the protocol.
pub(super) async fn serve<S, A>(
    ws: WebSocketStream<S>,
    answerer: A,
    incoming: Incoming,
    limits: Limits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Answerer,
{
    let (sink, stream) = ws.split();
    let (outbox, pending) = mpsc::channel(OUTBOX);
    let mut writer = tokio::spawn(write_frames(sink, pending, limits.ping_interval * 2));
    let mut frames = Frames {
        answerer,
        incoming: Arc::new(incoming),
        limits,
        outbox: outbox.clone(),
        held_connects: HeldConnects::default(),
        processed: future::ready(()).boxed().shared(),
    };
    let close = frames.read(stream).await;
    // A connect still held would take events the socket can no longer deliver; ending it
    // leaves them queued in the engine for the client's next connect.
    drop(frames);
    let _ = tokio::time::timeout(CLOSE_GRACE, outbox.send(Message::Close(close))).await;
    drop(outbox);
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// The reading side of one socket and the tasks of its frames.
struct Frames<A> {
    answerer: A,
    incoming: Arc<Incoming>,
    limits: Limits,
    outbox: mpsc::Sender<Message>,
    held_connects: HeldConnects,
    /// Resolves once the last frame without a `/meta/connect` is processed.
    processed: Shared<BoxFuture<'static, ()>>,
}

impl<A: Answerer> Frames<A> {
    /// Reads frames until the socket ends; the close frame to send, if any.
    async fn read<S>(&mut self, mut stream: SplitStream<WebSocketStream<S>>) -> Option<CloseFrame>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ping_interval = self.limits.ping_interval;
        let slots = Arc::new(Semaphore::new(FRAMES_IN_FLIGHT));
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(last_heard + ping_interval, ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    if last_heard.elapsed() >= ping_interval * 2 {
                        return close(CloseCode::Away, "nothing heard for two ping intervals");
                    }
                    // A full outbox means the writer is busy anyway: skip this ping.
                    let _ = self.outbox.try_send(Message::Ping(Bytes::new()));
                }
                _ = self.outbox.closed() => return None,
                (slot, frame) = next_frame(&mut stream, &slots) => {
                    let frame = frame?;
                    last_heard = Instant::now();
                    match frame {
                        Ok(Message::Text(text)) => match Bayeux::parse(text.as_str().as_bytes()) {
                            Ok(messages) => self.spawn(messages, slot),
                            Err(error) => return close(CloseCode::Invalid, &error.to_string()),
                        },
                        Ok(Message::Binary(_)) => {
                            return close(CloseCode::Unsupported, "Bayeux messages are JSON text frames");
                        }
                        Ok(Message::Close(_)) => return None,
                        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                        Err(WsError::Capacity(_)) => {
                            let reason = format!("a message may be at most {} bytes", self.limits.max_message);
                            return close(CloseCode::Size, &reason);
                        }
                        Err(error) => {
                            tracing::debug!(%error, "notification socket read failed");
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// Processes one frame's messages in a task of its own, which holds `slot` until its
    /// reply is in the outbox. The task starts once the frames before it are processed,
    /// except those with a `/meta/connect`: a held connect never delays later frames.
    fn spawn(&mut self, messages: Vec<BayeuxMessage>, slot: OwnedSemaphorePermit) {
        let holds_connect = messages
            .iter()
            .any(|m| m.0.get("channel").and_then(Value::as_str) == Some("/meta/connect"));
        let answer = self.answerer.answer(messages, Arc::clone(&self.incoming));
        let outbox = self.outbox.clone();
        let deadline = self.limits.deadline;
        let after = self.processed.clone();
        let done = (!holds_connect).then(|| {
            let (done, processed) = oneshot::channel::<()>();
            // Dropping `done` (processed, or the task gone) is the signal.
            self.processed = processed.map(|_| ()).boxed().shared();
            done
        });
        let task = tokio::spawn(async move {
            after.await;
            let answered = tokio::time::timeout(deadline, answer).await;
            drop(done);
            let reply = match answered {
                Ok(replies) if replies.is_empty() => None,
                Ok(replies) => Some(Message::text(Value::Array(replies).to_string())),
                Err(_) => {
                    tracing::warn!(?deadline, "notification engine did not answer a frame");
                    // The client's state is unknown now: it reconnects and re-handshakes.
                    close(CloseCode::Error, "the notification engine did not answer")
                        .map(|frame| Message::Close(Some(frame)))
                }
            };
            if let Some(reply) = reply {
                let _ = outbox.send(reply).await;
            }
            drop(slot);
        });
        if holds_connect {
            self.held_connects.add(task.abort_handle());
        }
    }
}

/// The next frame, once a processing slot is free (so a busy socket is not read).
async fn next_frame<S>(
    stream: &mut SplitStream<WebSocketStream<S>>,
    slots: &Arc<Semaphore>,
) -> (OwnedSemaphorePermit, Option<Result<Message, WsError>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(slot) = Arc::clone(slots).acquire_owned().await else {
        // The semaphore is never closed; wait forever rather than read without a slot.
        return std::future::pending().await;
    };
    (slot, stream.next().await)
}

fn close(code: CloseCode, reason: &str) -> Option<CloseFrame> {
    // A close frame's reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    })
}

/// Writes the outbox to the socket, until a close frame went out, the socket failed, or
/// the client stopped reading for `write_timeout`.
async fn write_frames<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbox: mpsc::Receiver<Message>,
    write_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = outbox.recv().await {
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(write_timeout, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break,
            Ok(Err(error)) => {
                tracing::debug!(%error, "notification socket write failed");
                break;
            }
            Err(_) => {
                tracing::debug!("notification socket not read by its client; closing it");
                break;
            }
        }
    }
}

/// The tasks of frames with a `/meta/connect`, ended when the socket ends.
#[derive(Default)]
struct HeldConnects(Vec<AbortHandle>);

impl HeldConnects {
    fn add(&mut self, task: AbortHandle) {
        self.0.retain(|t| !t.is_finished());
        self.0.push(task);
    }
}

impl Drop for HeldConnects {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
