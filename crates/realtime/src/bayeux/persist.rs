//! Keeping sessions across restarts: saving session rows, flushing positions lazily,
//! restoring sessions at start-up with the notifications they had not been handed yet,
//! and pruning the log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_store::{BayeuxSessionPosition, BayeuxSessionRecord, StoreError};
use serde_json::Value;
use tokio::time::Instant;

use super::channel::ChannelPattern;
use super::session::{Pushed, Queued, Session};
use super::Inner;

/// Log entries read per query while replaying.
const REPLAY_PAGE: i64 = 1_000;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The row of `session` as it is now.
pub fn record(inner: &Inner, session: &Session) -> BayeuxSessionRecord {
    let published = inner.published.load(Ordering::Acquire);
    let cursor = session.cursor(published);
    let (answered_seq, answered_ago) = session.unconfirmed_answer();
    let state = session.state();
    BayeuxSessionRecord {
        endpoint: inner.endpoint.as_str().into(),
        client_id: session.client_id.clone(),
        tenant: session.tenant.clone(),
        user: session.user.clone(),
        role: session.role.clone(),
        subscriptions: state
            .subscriptions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        connect_timeout_ms: duration_ms(state.connect_timeout),
        last_seen_ms: now_ms() - duration_ms(state.last_seen.elapsed()),
        cursor,
        answered_seq,
        answered_ms: if answered_seq == 0 {
            0
        } else {
            now_ms() - duration_ms(answered_ago)
        },
        node: inner.node.clone().unwrap_or_default(),
    }
}

/// Saves `session`'s row; a failure is logged (the session goes on in memory).
pub async fn save(inner: &Inner, session: &Session) {
    let row = record(inner, session);
    if let Err(e) = inner.store.bayeux_save_session(&row).await {
        tracing::warn!(endpoint = inner.endpoint.as_str(), tenant = %session.tenant, error = %e,
            "cannot save a Bayeux session; it will not survive a restart");
    }
}

/// Deletes the row of a session that ended here. Expiry on a node that shares the
/// database deletes only rows nobody saw within the lifetime: a node that missed the
/// notice of a takeover would otherwise delete the row of a session now served elsewhere.
pub async fn delete_expired(inner: &Inner, session: &Session) {
    if inner.node.is_none() {
        return delete(inner, session).await;
    }
    if let Err(e) = inner
        .store
        .bayeux_delete_stale_sessions(inner.endpoint.as_str(), oldest_live_ms(inner))
        .await
    {
        tracing::warn!(endpoint = inner.endpoint.as_str(), error = %e, "cannot delete expired Bayeux sessions");
    }
}

/// A session last seen before this (unix ms) has expired whatever its connect timeout.
pub fn oldest_live_ms(inner: &Inner) -> i64 {
    now_ms() - duration_ms(inner.options.max_connect_timeout + inner.options.session_grace)
}

pub async fn delete(inner: &Inner, session: &Session) {
    if let Err(e) = inner
        .store
        .bayeux_delete_session(inner.endpoint.as_str(), &session.tenant, &session.client_id)
        .await
    {
        tracing::warn!(endpoint = inner.endpoint.as_str(), error = %e, "cannot delete a Bayeux session");
    }
}

/// Saves the position (cursor, last seen) of every session that changed since the last
/// flush (`all`: of every session), then prunes the log below the lowest cursor.
pub async fn flush(inner: &Inner, all: bool) -> Result<(), StoreError> {
    let published = inner.published.load(Ordering::Acquire);
    let sessions = inner.sessions.all();
    let mut positions = Vec::new();
    let mut lowest = published;
    for session in &sessions {
        let cursor = session.cursor(published);
        lowest = lowest.min(cursor);
        let mut state = session.state();
        if all || state.dirty {
            state.dirty = false;
            positions.push(BayeuxSessionPosition {
                client_id: session.client_id.clone(),
                tenant: session.tenant.clone(),
                last_seen_ms: now_ms() - duration_ms(state.last_seen.elapsed()),
                cursor,
            });
        }
    }
    let endpoint = inner.endpoint.as_str();
    // Only where this node serves the session: another may have taken it over.
    let node = inner.node.as_deref().unwrap_or_default();
    inner
        .store
        .bayeux_save_node_positions(endpoint, node, &positions)
        .await?;
    // Other nodes' sessions need what their saved cursors have not passed (saved lazily,
    // so never ahead of what they were handed).
    if inner.node.is_some() {
        if let Some(shared) = inner
            .store
            .bayeux_lowest_cursor(endpoint, oldest_live_ms(inner))
            .await?
        {
            lowest = lowest.min(shared);
        }
    }
    // No live session needs an entry at or below every cursor, nor one older than the
    // longest a session can live without a connect.
    let lifetime = inner.options.max_connect_timeout + inner.options.session_grace;
    inner
        .store
        .bayeux_prune_log(endpoint, lowest, now_ms() - duration_ms(lifetime))
        .await?;
    Ok(())
}

/// Loads the sessions that were live when the process stopped and queues, in order, the
/// logged notifications each had not been handed yet. Rows past their grace are deleted.
pub async fn restore(inner: &Inner) -> Result<usize, StoreError> {
    let endpoint = inner.endpoint.as_str();
    let now = now_ms();
    let grace = duration_ms(inner.options.session_grace);
    let mut by_tenant: HashMap<String, Vec<(Arc<Session>, i64)>> = HashMap::new();
    for row in inner.store.bayeux_sessions(endpoint).await? {
        let age = now.saturating_sub(row.last_seen_ms).max(0);
        if age > row.connect_timeout_ms.saturating_add(grace) {
            continue;
        }
        let Some(session) = revive(&row, age) else {
            tracing::warn!(endpoint, tenant = %row.tenant, "dropping a saved Bayeux session with unreadable subscriptions");
            continue;
        };
        if inner.sessions.insert(session.clone()) {
            by_tenant
                .entry(row.tenant.clone())
                .or_default()
                .push((session, row.cursor));
        }
    }
    let oldest_live = now - duration_ms(inner.options.max_connect_timeout) - grace;
    inner
        .store
        .bayeux_delete_stale_sessions(endpoint, oldest_live)
        .await?;
    let mut restored = 0;
    for (tenant, sessions) in by_tenant {
        replay(inner, &tenant, &sessions).await?;
        restored += sessions.len();
    }
    Ok(restored)
}

pub fn revive(row: &BayeuxSessionRecord, age_ms: i64) -> Option<Arc<Session>> {
    let timeout = Duration::from_millis(u64::try_from(row.connect_timeout_ms).unwrap_or(0));
    let session = Session::new(
        row.client_id.clone(),
        row.tenant.clone(),
        row.user.clone(),
        row.role.clone(),
        timeout,
    );
    {
        let mut state = session.state();
        for text in &row.subscriptions {
            state.subscriptions.push(ChannelPattern::parse(text).ok()?);
        }
        let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        state.last_seen = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        // It connected before the restart: its next connect may be held.
        state.connects = 1;
    }
    Some(Arc::new(session))
}

/// Queues `tenant`'s logged notifications after each session's cursor.
async fn replay(
    inner: &Inner,
    tenant: &str,
    sessions: &[(Arc<Session>, i64)],
) -> Result<(), StoreError> {
    let Some(mut after) = sessions.iter().map(|(_, cursor)| *cursor).min() else {
        return Ok(());
    };
    loop {
        let entries = inner
            .store
            .bayeux_entries_after(inner.endpoint.as_str(), tenant, after, REPLAY_PAGE)
            .await?;
        let Some(last) = entries.last() else {
            return Ok(());
        };
        after = last.seq;
        for entry in &entries {
            let data: Value = serde_json::from_str(&entry.data).unwrap_or(Value::Null);
            let event = Queued {
                seq: entry.seq,
                channel: entry.channel.as_str().into(),
                data: Arc::new(data),
            };
            for (session, cursor) in sessions {
                if entry.seq > *cursor
                    && session.push(&entry.channel, &event, inner.limits.max_queue)
                        == Pushed::Overflowed
                {
                    inner.sessions.remove(&session.client_id);
                    delete(inner, session).await;
                }
            }
        }
    }
}
