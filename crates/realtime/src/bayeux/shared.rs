//! Several `portico serve` nodes on one database (OPS-2). The state is shared through the
//! database rather than owned by one node:
//!
//! - **Notifications.** Every node appends to the endpoint's one log; after appending it
//!   sends the `bayeux` notice (payload: the tenant). Every node, on that notice or on a
//!   resync, reads the log after the last entry it offered ([`Inner::published`]) and
//!   offers each entry to the sessions it holds, so a held connect anywhere wakes.
//! - **Sessions.** A node holds the sessions whose clients talk to it. When a client's
//!   request names a session this node does not hold, it loads the saved row ([`take_over`]),
//!   queues what the client has not been handed yet, and sends the `bayeux_session` notice;
//!   the node that held the session before drops its copy on it, answering a connect held
//!   there with no events, so no notification goes out from two nodes.
//!
//! For the takeover to hand out nothing twice, a node sharing the database saves a session
//! as soon as a connect answer hands out events or settles the previous answer; the lazy
//! flush of positions is enough only on a node alone. A session's row names the node
//! serving it: only that node flushes its position, and a node that missed notices drops,
//! at the resync, the sessions whose rows name another node.

use std::sync::{Arc, Weak};
use std::time::Duration;

use portico_store::{BayeuxLogEntry, BayeuxSessionRecord, Notice, StoreError};
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::persist::{self, now_ms};
use super::session::{End, Pushed, Queued, Session};
use super::{offer, Inner};
use std::sync::atomic::Ordering;

/// New entries in a tenant's notification log (payload: the tenant).
pub const BAYEUX_NOTICE: &str = "bayeux";
/// A session was taken over by another node (payload: `tenant\nclient id\nnode`).
pub const BAYEUX_SESSION_NOTICE: &str = "bayeux_session";

/// Log entries read per query.
const PAGE: i64 = 1_000;

/// At the start of a node that shares the database: deletes the rows of sessions that
/// expired while nobody served them (live ones load on demand) and starts listening.
pub(super) async fn start(inner: &Arc<Inner>, notices: Receiver<Notice>) -> Result<(), StoreError> {
    inner
        .store
        .bayeux_delete_stale_sessions(inner.endpoint.as_str(), persist::oldest_live_ms(inner))
        .await?;
    tokio::spawn(listen(Arc::downgrade(inner), notices, inner.stop.clone()));
    Ok(())
}

/// Acts on the notices until the engine is dropped or shut down. A burst of `bayeux`
/// notices (one per publish on any node) costs one read of the log, not one each.
async fn listen(inner: Weak<Inner>, mut notices: Receiver<Notice>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            notice = notices.recv() => notice,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let (mut read_log, mut missed) = (false, false);
        let mut next = Some(first);
        while let Some(notice) = next {
            match notice {
                Ok(n) if n.is_resync() => missed = true,
                Ok(n) if n.topic == BAYEUX_NOTICE => read_log = true,
                Ok(n) if n.topic == BAYEUX_SESSION_NOTICE => let_go(&inner, &n.payload),
                Ok(_) => {}
                // Notices were missed: about the log, about takeovers.
                Err(RecvError::Lagged(_)) => missed = true,
                Err(RecvError::Closed) => return,
            }
            next = match notices.try_recv() {
                Ok(notice) => Some(Ok(notice)),
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Empty | TryRecvError::Closed) => None,
            };
        }
        if missed {
            let_go_of_lost_sessions(&inner).await;
        }
        if read_log || missed {
            catch_up(&inner).await;
        }
    }
}

/// After notices may have been missed: drops the sessions whose rows say another node
/// serves them now (a takeover this node did not hear of). A session without a row is
/// kept: it may be new, or its row could not be saved.
async fn let_go_of_lost_sessions(inner: &Inner) {
    let (Some(node), endpoint) = (inner.node.as_deref(), inner.endpoint.as_str()) else {
        return;
    };
    let mine = match inner.store.bayeux_node_sessions(endpoint, node).await {
        Ok(ids) => ids.into_iter().collect::<std::collections::HashSet<_>>(),
        Err(e) => {
            tracing::warn!(endpoint, error = %e, "cannot check which Bayeux sessions this node serves");
            return;
        }
    };
    for session in inner.sessions.all() {
        if mine.contains(&session.client_id) {
            continue;
        }
        match inner
            .store
            .bayeux_session(endpoint, &session.client_id)
            .await
        {
            Ok(Some(row)) if row.node != node && row.tenant == session.tenant => {
                inner.sessions.remove(&session.client_id);
                session.end(End::TakenOver);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(endpoint, error = %e, "cannot check a Bayeux session");
                return;
            }
        }
    }
}

/// Tells every node that `tenant` has new entries in the log (only when nodes share the
/// database: alone, the publish offered the entry already).
pub(super) async fn announce(inner: &Inner, tenant: &str) {
    if inner.node.is_none() {
        return;
    }
    if let Err(e) = inner.store.notify(BAYEUX_NOTICE, tenant).await {
        // The other nodes find the entry at their next notice or resync.
        tracing::warn!(endpoint = inner.endpoint.as_str(), tenant, error = %e,
            "cannot tell the other nodes of a notification");
    }
}

async fn catch_up(inner: &Inner) {
    let _one_at_a_time = inner.publish_lock.lock().await;
    if let Err(e) = catch_up_locked(inner).await {
        tracing::warn!(endpoint = inner.endpoint.as_str(), error = %e,
            "cannot read the notification log; trying again at the next notice");
    }
}

/// Offers every log entry after [`Inner::published`] to the sessions held here, in log
/// order. The caller holds the publish lock. Numbers are handed out under a row lock, so
/// when an entry is visible every earlier one is too.
pub(super) async fn catch_up_locked(inner: &Inner) -> Result<(), StoreError> {
    loop {
        let after = inner.published.load(Ordering::Acquire);
        let entries = inner
            .store
            .bayeux_log_after(inner.endpoint.as_str(), after, PAGE)
            .await?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(());
        };
        for entry in &entries {
            offer(inner, &entry.tenant, &queued(entry)).await;
        }
        inner.published.fetch_max(last, Ordering::AcqRel);
        if entries.len() < PAGE as usize {
            return Ok(());
        }
    }
}

fn queued(entry: &BayeuxLogEntry) -> Queued {
    Queued {
        seq: entry.seq,
        channel: entry.channel.as_str().into(),
        data: Arc::new(serde_json::from_str(&entry.data).unwrap_or(Value::Null)),
    }
}

/// Drops this node's copy of a session another node took over.
fn let_go(inner: &Inner, payload: &str) {
    let mut parts = payload.splitn(3, '\n');
    let (Some(tenant), Some(client_id), Some(node)) = (parts.next(), parts.next(), parts.next())
    else {
        tracing::warn!("ignoring a malformed Bayeux takeover notice");
        return;
    };
    if inner.node.as_deref() == Some(node) {
        return;
    }
    let Some(session) = inner.sessions.get(client_id) else {
        return;
    };
    if session.tenant != tenant {
        return;
    }
    inner.sessions.remove(client_id);
    session.end(End::TakenOver);
    tracing::debug!(
        endpoint = inner.endpoint.as_str(),
        tenant,
        to = node,
        "a Bayeux session moved to another node"
    );
}

/// The session with `client_id` loaded from the database, when nodes share it and the
/// session lives (None otherwise: the client gets `402::Unknown client`). It gets the
/// logged notifications it wanted and had not been handed yet, and the last answer it has
/// not confirmed; the other nodes are told to drop their copies.
pub(super) async fn take_over(inner: &Inner, client_id: &str) -> Option<Arc<Session>> {
    let node = inner.node.as_deref()?;
    let endpoint = inner.endpoint.as_str();
    let row = match inner.store.bayeux_session(endpoint, client_id).await {
        Ok(Some(row)) => row,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(endpoint, error = %e, "cannot load a Bayeux session");
            return None;
        }
    };
    let age = now_ms().saturating_sub(row.last_seen_ms).max(0);
    let grace = i64::try_from(inner.options.session_grace.as_millis()).unwrap_or(i64::MAX);
    if age > row.connect_timeout_ms.saturating_add(grace) {
        return None;
    }
    let session = persist::revive(&row, age)?;
    {
        let _one_at_a_time = inner.publish_lock.lock().await;
        if let Some(held) = inner.sessions.get(client_id) {
            // Another request of the same client loaded it meanwhile.
            return Some(held);
        }
        // Everything up to `published` is then offered here, and the session's own
        // entries up to it come from the replay: none twice, none missed.
        let replayed = match catch_up_locked(inner).await {
            Ok(()) => replay(inner, &session, &row).await,
            Err(e) => Err(e),
        };
        match replayed {
            // Saved as this node's before anyone can see it here: from now on only this
            // node saves its position.
            Ok(true) => persist::save(inner, &session).await,
            Ok(false) => {
                persist::delete(inner, &session).await;
                return None;
            }
            Err(e) => {
                tracing::warn!(endpoint, error = %e, "cannot take over a Bayeux session");
                return None;
            }
        }
        inner.sessions.insert(session.clone());
    }
    let payload = format!("{}\n{client_id}\n{node}", row.tenant);
    if let Err(e) = inner.store.notify(BAYEUX_SESSION_NOTICE, &payload).await {
        tracing::warn!(endpoint, error = %e, "cannot tell the other nodes of a Bayeux takeover");
    }
    tracing::debug!(endpoint, tenant = %row.tenant, "took over a Bayeux session");
    Some(session)
}

/// Queues the session's entries after its saved cursor up to what this node has offered;
/// those up to the saved answer become the answer not yet confirmed. False when the queue
/// overflowed (the session ended).
async fn replay(
    inner: &Inner,
    session: &Session,
    row: &BayeuxSessionRecord,
) -> Result<bool, StoreError> {
    let published = inner.published.load(Ordering::Acquire);
    let mut unconfirmed = Vec::new();
    let mut after = row.cursor;
    'pages: while after < published {
        let entries = inner
            .store
            .bayeux_entries_after(inner.endpoint.as_str(), &row.tenant, after, PAGE)
            .await?;
        let Some(last) = entries.last() else {
            break;
        };
        after = last.seq;
        for entry in &entries {
            if entry.seq > published {
                break 'pages;
            }
            if !session.wants(&entry.channel) {
                continue;
            }
            let event = queued(entry);
            if entry.seq <= row.answered_seq {
                unconfirmed.push(event);
            } else if session.push(&entry.channel, &event, inner.limits.max_queue)
                == Pushed::Overflowed
            {
                return Ok(false);
            }
        }
    }
    let ago = Duration::from_millis(u64::try_from(now_ms() - row.answered_ms).unwrap_or(0));
    let answered_at = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
    session.set_unconfirmed(unconfirmed, answered_at);
    Ok(true)
}
