//! One client session: its subscriptions, its queue of notifications waiting for the next
//! connect, and the one connect it may have outstanding. A held connect waits on the
//! session's [`Notify`] rather than in a task of its own, so an idle session costs only
//! this struct.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::channel::ChannelPattern;

/// A notification waiting in a session's queue.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Its number in the endpoint's log.
    pub seq: i64,
    pub channel: Arc<str>,
    pub data: Arc<Value>,
}

impl Queued {
    /// The event message a client receives.
    pub fn to_message(&self) -> Value {
        serde_json::json!({"channel": &*self.channel, "data": &*self.data})
    }
}

#[derive(Debug)]
pub struct SessionState {
    pub subscriptions: Vec<ChannelPattern>,
    pub queue: VecDeque<Queued>,
    /// How long this client's connects are held (its `advice.timeout`, clamped).
    pub connect_timeout: Duration,
    pub last_seen: Instant,
    /// Connects answered so far; the first after the handshake is answered at once.
    pub connects: u64,
    /// Bumped by every connect: a held connect whose number is no longer current was
    /// replaced by a newer one and answers at once.
    pub connect_generation: u64,
    /// A connect is being held now (the session is not idle, whatever `last_seen` says).
    pub holding: bool,
    /// Why the session ended, once it has; held connects then answer with 402.
    pub ended: Option<End>,
    /// Changed since the position was last saved.
    pub dirty: bool,
    /// The events of the last connect answered, kept until the client shows it got them
    /// by connecting again promptly (see [`REDELIVER_AFTER`]).
    pub unconfirmed: Vec<Queued>,
    /// When they were handed out.
    pub answered_at: Instant,
}

/// A client that got a connect's answer sends its next connect at once (the advice's
/// interval is 0). One that comes back later than this may never have received the answer:
/// a firewall or NAT can swallow a held poll's connection without a word to either side,
/// and the answer with it. Bayeux 1.0 has no acknowledgement, so the events of that answer
/// are handed out again: delivery is at least once, and a device's operation updates are
/// compare-and-set, so a duplicate cannot complete an operation twice.
pub const REDELIVER_AFTER: Duration = Duration::from_secs(5);

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Disconnected,
    Expired,
    /// Its queue outgrew the limit; the client must handshake again (and then finds what
    /// it missed, operations through its PENDING query).
    Overflowed,
    /// Another node on the same database took it over (its client's next request landed
    /// there); a connect held here answers with no events, as if replaced by a newer one.
    TakenOver,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: String,
    pub tenant: String,
    pub user: String,
    /// The user's role; a device's own user subscribes only to what it owns.
    pub role: String,
    state: Mutex<SessionState>,
    /// Woken when a notification arrives, a newer connect comes, or the session ends.
    pub wake: Notify,
}

/// What [`Session::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    NotSubscribed,
    /// The queue is full: the session was ended and must be removed.
    Overflowed,
}

impl Session {
    pub fn new(
        client_id: String,
        tenant: String,
        user: String,
        role: String,
        connect_timeout: Duration,
    ) -> Session {
        Session {
            client_id,
            tenant,
            user,
            role,
            state: Mutex::new(SessionState {
                subscriptions: Vec::new(),
                queue: VecDeque::new(),
                connect_timeout,
                last_seen: Instant::now(),
                connects: 0,
                connect_generation: 0,
                holding: false,
                ended: None,
                dirty: true,
                unconfirmed: Vec::new(),
                answered_at: Instant::now(),
            }),
            wake: Notify::new(),
        }
    }

    /// The session's state. The lock is never held across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, SessionState> {
        // A panic while holding this lock cannot leave the state half-changed in a way
        // that matters more than losing the session, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` when a subscription matches `channel`, and wakes a held connect.
    pub fn push(&self, channel: &str, event: &Queued, max_queue: usize) -> Pushed {
        let mut state = self.state();
        if state.ended.is_some() || !state.subscriptions.iter().any(|p| p.matches(channel)) {
            return Pushed::NotSubscribed;
        }
        if state.queue.len() >= max_queue {
            state.queue.clear();
            state.ended = Some(End::Overflowed);
            drop(state);
            self.wake.notify_waiters();
            return Pushed::Overflowed;
        }
        state.queue.push_back(event.clone());
        state.dirty = true;
        drop(state);
        self.wake.notify_waiters();
        Pushed::Queued
    }

    /// Whether a subscription of the session matches `channel`.
    pub fn wants(&self, channel: &str) -> bool {
        self.state()
            .subscriptions
            .iter()
            .any(|p| p.matches(channel))
    }

    /// The answer another node handed out and the client has not confirmed yet (a
    /// session taken over): kept as this node's own last answer, so that a prompt next
    /// connect confirms it and a late one gets it again.
    pub fn set_unconfirmed(&self, events: Vec<Queued>, answered_at: Instant) {
        let mut state = self.state();
        state.unconfirmed = events;
        state.answered_at = answered_at;
    }

    /// The highest sequence number of the answer not yet confirmed (0: none) and how
    /// long ago it was handed out.
    pub fn unconfirmed_answer(&self) -> (i64, Duration) {
        let state = self.state();
        match state.unconfirmed.last() {
            Some(last) => (last.seq, state.answered_at.elapsed()),
            None => (0, Duration::ZERO),
        }
    }

    /// Ends the session and releases its held connect.
    pub fn end(&self, why: End) {
        let mut state = self.state();
        if state.ended.is_none() {
            state.ended = Some(why);
        }
        drop(state);
        self.wake.notify_waiters();
    }

    /// Every log entry up to the returned number that this session wanted was handed
    /// out. `published` must be read before this call: the engine raises it only after
    /// an entry was offered to every session.
    /// An answer not yet confirmed counts as not handed out: after a crash it is replayed.
    pub fn cursor(&self, published: i64) -> i64 {
        let state = self.state();
        match state.unconfirmed.first().or(state.queue.front()) {
            Some(first) => first.seq - 1,
            None => published,
        }
    }

    /// Whether the session went longer than its connect timeout plus `grace` without a
    /// connect.
    pub fn is_expired(&self, now: Instant, grace: Duration) -> bool {
        let state = self.state();
        !state.holding
            && now.saturating_duration_since(state.last_seen) > state.connect_timeout + grace
    }
}
