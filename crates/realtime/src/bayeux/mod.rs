//! The Bayeux 1.0 server (DC-2): one [`Bayeux`] per notification endpoint
//! (`/notification/operations`, `/notification/realtime`). It knows messages, channels,
//! client sessions and their queues; the transports (`crate::transport`) only move
//! request bodies and WebSocket frames in and out of [`Bayeux::process`].
//!
//! Modules: [`message`] (reading requests, shaping replies), [`channel`] (names, patterns,
//! what each endpoint offers), `session`/`sessions` (a client's queue and held connect,
//! the table and expiry), `meta` (the handlers of the meta channels), `persist` (sessions
//! and the notification log in the store), `shared` (several nodes on one database).
//! `docs/bayeux.md` and `docs/cluster.md` explain the decisions.

pub mod channel;
pub mod message;
mod meta;
mod persist;
mod session;
mod sessions;
mod shared;

use portico_store::{Store, StoreError};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use channel::ChannelPattern;
use message::{Refusal, Request};
use session::{Pushed, Queued};
use sessions::Sessions;

/// Which notification endpoint an engine serves; sessions and queued notifications are
/// kept apart per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/notification/operations`: channel `/<deviceId>`, data = the operation.
    Operations,
    /// `/notification/realtime`: channels `/<kind>/<id or *>`, data = `{realtimeAction, data}`.
    Realtime,
}

#[derive(Debug, Clone)]
pub struct BayeuxOptions {
    /// How long a connect is held when the client asks for nothing else (DC-3: ~25 s).
    pub connect_timeout: Duration,
    /// The most a client's `advice.timeout` may ask for.
    pub max_connect_timeout: Duration,
    /// How long a session lives without a connect, beyond its connect timeout.
    pub session_grace: Duration,
}

impl Default for BayeuxOptions {
    fn default() -> BayeuxOptions {
        BayeuxOptions {
            connect_timeout: Duration::from_secs(25),
            max_connect_timeout: Duration::from_secs(50),
            session_grace: Duration::from_secs(60),
        }
    }
}

impl Endpoint {
    /// The endpoint's name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Operations => "operations",
            Endpoint::Realtime => "realtime",
        }
    }
}

/// Bounds on what one client may make the engine hold, and how often positions are saved.
#[derive(Debug, Clone)]
pub struct BayeuxLimits {
    /// Notifications a session may have waiting; one more ends the session (the client
    /// handshakes again).
    pub max_queue: usize,
    /// Messages in one request; a longer request is refused as a whole.
    pub max_messages: usize,
    /// Subscriptions of one session.
    pub max_subscriptions: usize,
    /// How often session positions (cursor, last seen) are saved and sessions expired.
    pub flush_interval: Duration,
    /// A client that connects again later than this after an answer with events may not
    /// have received it; those events are handed out again (see `session::REDELIVER_AFTER`).
    pub redeliver_after: Duration,
}

impl Default for BayeuxLimits {
    fn default() -> BayeuxLimits {
        BayeuxLimits {
            max_queue: 10_000,
            max_messages: 100,
            max_subscriptions: 100,
            flush_interval: Duration::from_secs(5),
            redeliver_after: session::REDELIVER_AFTER,
        }
    }
}

/// How the messages of one request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    LongPolling,
    CallbackPolling,
    WebSocket,
}

/// What a transport knows about the request (or WebSocket frame) the messages came in.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The HTTP `Authorization` header, if any (the WebSocket's upgrade request's).
    pub authorization: Option<String>,
    pub client: IpAddr,
    pub connection_type: ConnectionType,
}

/// One Bayeux message, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Message(pub serde_json::Map<String, Value>);

/// A request body that is not Bayeux: not JSON, or neither an object nor an array of
/// objects. The transport answers it with 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadMessage(pub String);

/// One notification endpoint's engine. Cheap to clone.
#[derive(Clone)]
pub struct Bayeux {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    options: BayeuxOptions,
    limits: BayeuxLimits,
    store: Store,
    accounts: Arc<dyn Accounts>,
    sessions: Sessions,
    /// The highest log sequence number offered to every session. Raised only after the
    /// offering, so a session's cursor computed from it never skips an entry.
    published: AtomicI64,
    /// Publishes one at a time, so that queues hold notifications in log order.
    publish_lock: tokio::sync::Mutex<()>,
    /// Cancelled by `shut_down`: stops housekeeping and releases held connects.
    stop: CancellationToken,
    /// This node's name when it shares the database with other nodes (OPS-2): sessions
    /// then load on demand, and notifications of other nodes arrive through the log.
    node: Option<String>,
}

impl Bayeux {
    /// Opens the engine, with the sessions that were live when the process last stopped.
    pub async fn open(
        store: Store,
        endpoint: Endpoint,
        accounts: Arc<dyn Accounts>,
        options: BayeuxOptions,
    ) -> Result<Bayeux, StoreError> {
        Bayeux::open_with_limits(store, endpoint, accounts, options, BayeuxLimits::default()).await
    }

    /// [`Bayeux::open`] with other bounds than the defaults.
    pub async fn open_with_limits(
        store: Store,
        endpoint: Endpoint,
        accounts: Arc<dyn Accounts>,
        options: BayeuxOptions,
        limits: BayeuxLimits,
    ) -> Result<Bayeux, StoreError> {
        Bayeux::start(store, endpoint, accounts, options, limits, None).await
    }

    /// The engine of node `node`, one of several `portico serve` processes on one
    /// database: nothing is restored at start; a session is loaded from the database when
    /// its client's request comes (taking it over from the node that served it before),
    /// and other nodes' notifications are read from the log on their `bayeux` notice.
    pub async fn open_shared(
        store: Store,
        endpoint: Endpoint,
        accounts: Arc<dyn Accounts>,
        options: BayeuxOptions,
        limits: BayeuxLimits,
        node: String,
    ) -> Result<Bayeux, StoreError> {
        Bayeux::start(store, endpoint, accounts, options, limits, Some(node)).await
    }

    async fn start(
        store: Store,
        endpoint: Endpoint,
        accounts: Arc<dyn Accounts>,
        options: BayeuxOptions,
        limits: BayeuxLimits,
        node: Option<String>,
    ) -> Result<Bayeux, StoreError> {
        // Listening before the log's end is read: nothing appended in between is missed.
        let notices = node.is_some().then(|| store.notices());
        let published = store.bayeux_last_seq(endpoint.as_str()).await?;
        let inner = Arc::new(Inner {
            endpoint,
            options,
            limits,
            store,
            accounts,
            sessions: Sessions::default(),
            published: AtomicI64::new(published),
            publish_lock: tokio::sync::Mutex::new(()),
            stop: CancellationToken::new(),
            node,
        });
        let restored = match notices {
            Some(notices) => {
                shared::start(&inner, notices).await?;
                0
            }
            None => persist::restore(&inner).await?,
        };
        if restored > 0 {
            tracing::info!(
                endpoint = endpoint.as_str(),
                restored,
                "restored Bayeux sessions"
            );
        }
        tokio::spawn(housekeeping(Arc::downgrade(&inner), inner.stop.clone()));
        Ok(Bayeux { inner })
    }

    pub fn endpoint(&self) -> Endpoint {
        self.inner.endpoint
    }

    /// The longest a `/meta/connect` may be held; transports keep their own timeouts above.
    pub fn max_hold(&self) -> Duration {
        self.inner.options.max_connect_timeout
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// A request body: a JSON array of messages, or one message object.
    pub fn parse(body: &[u8]) -> Result<Vec<Message>, BadMessage> {
        message::parse(body)
    }

    /// Processes the messages in order and answers all of them in one array. A
    /// `/meta/connect` among them may wait: until a notification for its client, its
    /// timeout, or a newer connect of the same client.
    pub async fn process(&self, messages: Vec<Message>, incoming: &Incoming) -> Vec<Value> {
        if messages.len() > self.inner.limits.max_messages {
            let error = format!(
                "400::at most {} messages in one request",
                self.inner.limits.max_messages
            );
            return messages
                .iter()
                .map(|m| Value::Object(message::error_reply(m, &error)))
                .collect();
        }
        let mut replies = Vec::with_capacity(messages.len());
        for m in &messages {
            match Request::from_message(m) {
                Ok(request) => meta::handle(&self.inner, m, request, incoming, &mut replies).await,
                Err(Refusal(error)) => replies.push(Value::Object(message::error_reply(m, &error))),
            }
        }
        replies
    }

    /// Delivers `data` on `channel` to the sessions of `tenant` subscribed to it, recording
    /// it first so sessions restored after a restart still get it.
    pub async fn publish(&self, tenant: &str, channel: &str, data: Value) {
        let inner = &self.inner;
        let endpoint = inner.endpoint.as_str();
        match ChannelPattern::parse(channel) {
            Ok(p) if !p.is_wildcard() && !p.is_meta() && !p.is_service() => {}
            _ => {
                tracing::warn!(endpoint, channel, "not publishing to an invalid channel");
                return;
            }
        }
        let one_at_a_time = inner.publish_lock.lock().await;
        let appended = inner
            .store
            .bayeux_append(
                endpoint,
                tenant,
                channel,
                &data.to_string(),
                persist::now_ms(),
            )
            .await;
        let seq = match &appended {
            Ok(seq) => *seq,
            Err(e) => {
                // Still delivered to the live sessions; only a restart could lose it.
                tracing::error!(endpoint, tenant, error = %e, "cannot log a notification");
                inner.published.load(Ordering::Acquire)
            }
        };
        let published = inner.published.load(Ordering::Acquire);
        if seq <= published + 1 {
            let event = Queued {
                seq,
                channel: channel.into(),
                data: Arc::new(data),
            };
            offer(inner, tenant, &event).await;
            inner.published.fetch_max(seq, Ordering::AcqRel);
        } else if let Err(e) = shared::catch_up_locked(inner).await {
            // Another node appended in between: the entries are offered in log order, this
            // one among them, at the next notice or resync if not now.
            tracing::warn!(endpoint, error = %e, "cannot read the notification log");
        }
        drop(one_at_a_time);
        if appended.is_ok() {
            shared::announce(inner, tenant).await;
        }
    }

    /// Releases held connects and saves the sessions' positions, before the process ends.
    pub async fn shut_down(&self) {
        self.inner.stop.cancel();
        // Wait for the publish in progress, so its entry is counted in the cursors.
        let _no_publish = self.inner.publish_lock.lock().await;
        if let Err(e) = persist::flush(&self.inner, true).await {
            tracing::error!(endpoint = self.inner.endpoint.as_str(), error = %e,
                "cannot save the Bayeux sessions' positions at shutdown");
        }
    }
}

/// Queues `event` for `tenant`'s sessions subscribed to its channel (ending those whose
/// queue overflows). Called with the publish lock held, in log order.
async fn offer(inner: &Inner, tenant: &str, event: &Queued) {
    for session in inner.sessions.of_tenant(tenant) {
        if session.push(&event.channel, event, inner.limits.max_queue) == Pushed::Overflowed {
            tracing::warn!(
                endpoint = inner.endpoint.as_str(),
                tenant,
                "a Bayeux session's queue overflowed; ending it"
            );
            inner.sessions.remove(&session.client_id);
            persist::delete(inner, &session).await;
        }
    }
}

/// Expires sessions and saves positions every `flush_interval` (more often when the
/// grace is short), until the engine is dropped or shut down.
async fn housekeeping(inner: Weak<Inner>, stop: CancellationToken) {
    let period = match inner.upgrade() {
        Some(inner) => inner
            .limits
            .flush_interval
            .min(inner.options.session_grace / 2)
            .max(Duration::from_millis(10)),
        None => return,
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let expired = inner
            .sessions
            .take_expired(tokio::time::Instant::now(), inner.options.session_grace);
        for session in &expired {
            persist::delete_expired(&inner, session).await;
        }
        if let Err(e) = persist::flush(&inner, false).await {
            tracing::warn!(endpoint = inner.endpoint.as_str(), error = %e,
                "cannot save the Bayeux sessions' positions");
        }
    }
}
