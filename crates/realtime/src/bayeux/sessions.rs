//! The table of live sessions, the held `/meta/connect`, and expiry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::session::{End, Queued, Session, SessionState};

/// Live sessions by client id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `session` unless its client id is taken; says whether it was added.
    pub fn insert(&self, session: Arc<Session>) -> bool {
        let mut map = self.write();
        if map.contains_key(&session.client_id) {
            return false;
        }
        map.insert(session.client_id.clone(), session);
        true
    }

    pub fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.read().get(client_id).cloned()
    }

    pub fn remove(&self, client_id: &str) -> Option<Arc<Session>> {
        self.write().remove(client_id)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.read().values().cloned().collect()
    }

    /// The sessions of one tenant: only they may see its notifications.
    pub fn of_tenant(&self, tenant: &str) -> Vec<Arc<Session>> {
        self.read()
            .values()
            .filter(|s| s.tenant == tenant)
            .cloned()
            .collect()
    }

    /// Takes the sessions that went too long without a connect out of the table and
    /// ends them.
    pub fn take_expired(&self, now: Instant, grace: Duration) -> Vec<Arc<Session>> {
        let expired: Vec<String> = self
            .read()
            .values()
            .filter(|s| s.is_expired(now, grace))
            .map(|s| s.client_id.clone())
            .collect();
        let mut map = self.write();
        let taken: Vec<Arc<Session>> = expired.iter().filter_map(|id| map.remove(id)).collect();
        drop(map);
        for session in &taken {
            session.end(End::Expired);
        }
        taken
    }
}

/// How a connect was answered.
#[derive(Debug)]
pub struct ConnectAnswer {
    pub events: Vec<Queued>,
    /// Set when the session ended meanwhile.
    pub ended: Option<End>,
    /// The hold time to advise.
    pub timeout: Duration,
    /// The connect settled the previous answer (confirmed it, or queued it again).
    pub settled_answer: bool,
}

/// Serves a `/meta/connect`: answers at once for the first connect after the handshake,
/// for `advice.timeout: 0`, or when notifications are waiting; otherwise waits until a
/// notification arrives, the timeout passes, a newer connect of the same client comes, the
/// session ends or the server stops.
pub async fn connect(
    session: &Session,
    requested: Option<Duration>,
    max: Duration,
    redeliver_after: Duration,
    stop: &CancellationToken,
) -> ConnectAnswer {
    let (generation, deadline, hold, settled_answer) = {
        let mut state = session.state();
        state.connect_generation += 1;
        let settled_answer = confirm_or_requeue(&mut state, redeliver_after);
        if let Some(t) = requested.filter(|t| !t.is_zero()) {
            state.connect_timeout = t.min(max);
        }
        let hold = state.connects > 0
            && requested != Some(Duration::ZERO)
            && state.queue.is_empty()
            && state.ended.is_none();
        state.connects += 1;
        state.last_seen = Instant::now();
        state.holding = hold;
        state.dirty = true;
        (
            state.connect_generation,
            Instant::now() + state.connect_timeout,
            hold,
            settled_answer,
        )
    };
    // Releases the connect this one replaces, if any.
    session.wake.notify_waiters();
    if hold {
        // Dropped with the request when its client goes away; the session must not stay
        // "holding" then, or it would never expire.
        let guard = HoldGuard {
            session,
            generation,
        };
        wait(session, generation, deadline, stop).await;
        std::mem::forget(guard);
    }
    let mut state = session.state();
    let current = state.connect_generation == generation;
    if current {
        state.holding = false;
        state.last_seen = Instant::now();
    }
    // A replaced connect leaves the events to its successor; at shutdown they stay queued
    // (and saved) for the restarted server.
    let events: Vec<Queued> = if current && state.ended.is_none() && !stop.is_cancelled() {
        state.queue.drain(..).collect()
    } else {
        Vec::new()
    };
    if !events.is_empty() {
        state.unconfirmed = events.clone();
        state.answered_at = Instant::now();
    }
    ConnectAnswer {
        events,
        ended: state.ended,
        timeout: state.connect_timeout,
        settled_answer,
    }
}

/// At a new connect: the last answer's events count as received when the client came back
/// promptly, and go back to the front of the queue otherwise
/// ([`super::session::REDELIVER_AFTER`]).
/// Says whether there was such an answer.
fn confirm_or_requeue(state: &mut SessionState, redeliver_after: Duration) -> bool {
    let unconfirmed = std::mem::take(&mut state.unconfirmed);
    if unconfirmed.is_empty() {
        return false;
    }
    if state.answered_at.elapsed() > redeliver_after {
        for event in unconfirmed.into_iter().rev() {
            state.queue.push_front(event);
        }
    }
    true
}

/// Clears `holding` when a held connect is dropped before it answered.
struct HoldGuard<'a> {
    session: &'a Session,
    generation: u64,
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.session.state();
        if state.connect_generation == self.generation {
            state.holding = false;
            state.last_seen = Instant::now();
        }
    }
}

async fn wait(session: &Session, generation: u64, deadline: Instant, stop: &CancellationToken) {
    loop {
        // Made before looking at the state: a wake-up between the look and the wait is
        // not lost (`notify_waiters` reaches every `Notified` made before it).
        let notified = session.wake.notified();
        {
            let state = session.state();
            if state.ended.is_some()
                || state.connect_generation != generation
                || !state.queue.is_empty()
            {
                return;
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => return,
            _ = stop.cancelled() => return,
        }
    }
}
