//! The control hub (`/ccf/`): one control channel per online endpoint, over which the
//! relay tells each endpoint which connection sessions it listens for (`connect`) or dials
//! for (`permit`), and when they end (`disconnect`).
//!
//! The hub keeps, per channel, the sessions it has announced, and *synchronises* that set
//! with the store: at hello time, whenever the API reports a change, when a session's
//! timer fires, and every `recheck` (so that a session ended or an endpoint revoked by
//! other means, e.g. another node or the CLI on the store, is noticed too).
//!
//! - [`plan`]: what an endpoint is told about a session;
//! - [`channel`]: running one channel (hello checks, keep-alive, dead-after);
//! - `across_nodes`: in a cluster, the `rs_sessions` notices of every node.

mod across_nodes;
mod channel;
pub mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use portico_store::{
    AuditRecord, ConnectionSessionRecord, EndpointBinding, EndpointState, Store, StoreError,
};
use portico_tunnel::control::{ControlMessage, DisconnectReason, RefusalReason};
use rand::RngCore;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub use across_nodes::RS_SESSIONS;
pub use channel::{ChannelEnd, ControlChannelError};

use super::directory::EndpointKey;
use super::relay::Relay;
use crate::api::{system_clock, Clock, LiveEvents};

/// Settings of the control hub.
#[derive(Clone)]
pub struct ControlOptions {
    pub clock: Clock,
    /// How often both sides send `keep_alive` (told to the agent in `welcome`).
    pub keep_alive: Duration,
    /// A channel that hears nothing for this long is closed.
    pub dead_after: Duration,
    /// How often a channel rereads its endpoint and sessions from the store.
    pub recheck: Duration,
    /// How long the relay waits for the agent's `hello`.
    pub hello_timeout: Duration,
}

impl Default for ControlOptions {
    fn default() -> ControlOptions {
        ControlOptions {
            clock: system_clock(),
            keep_alive: Duration::from_secs(20),
            dead_after: Duration::from_secs(45),
            recheck: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(10),
        }
    }
}

/// Reports of changed tenants kept for a slow receiver before it must recheck all.
const SESSION_CHANGES_BACKLOG: usize = 64;

/// What the channel's task is asked to do.
#[derive(Debug)]
enum Command {
    Send(ControlMessage),
    /// Send the message, if any, and close the channel.
    Close(Option<ControlMessage>),
}

/// A live channel as the hub knows it.
struct Entry {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    /// The sessions announced on this channel. An async lock: one synchronisation at a
    /// time per channel, so that a stale read cannot re-announce an ended session.
    announced: Arc<tokio::sync::Mutex<HashSet<String>>>,
}

struct Inner {
    store: Store,
    relay: Arc<Relay>,
    options: ControlOptions,
    channels: Mutex<HashMap<EndpointKey, Entry>>,
    /// A timer per open session that some channel announced: it ends the session at its
    /// timeout (RS-8).
    timers: Mutex<HashMap<(String, String), AbortHandle>>,
    next_id: AtomicU64,
    /// The tenants whose sessions changed, for whoever else carries sessions' bytes (the
    /// clientless browser access).
    changes: tokio::sync::broadcast::Sender<String>,
}

/// The control hub; cheap to clone.
#[derive(Clone)]
pub struct ControlHub {
    inner: Arc<Inner>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ControlHub {
    pub fn new(store: Store, relay: Arc<Relay>, options: ControlOptions) -> ControlHub {
        ControlHub {
            inner: Arc::new(Inner {
                store,
                relay,
                options,
                channels: Mutex::new(HashMap::new()),
                timers: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                changes: tokio::sync::broadcast::channel(SESSION_CHANGES_BACKLOG).0,
            }),
        }
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.inner.relay
    }

    /// Reports the tenant each time its sessions were synchronised with the store (after
    /// an API change or a session's timeout). A receiver that lags should recheck all.
    pub fn session_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.changes.subscribe()
    }

    fn now(&self) -> i64 {
        (self.inner.options.clock)()
    }

    /// Lists a channel, closing an older one of the same endpoint.
    fn register(&self, key: &EndpointKey) -> (u64, mpsc::UnboundedReceiver<Command>) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (commands, receiver) = mpsc::unbounded_channel();
        let entry = Entry {
            id,
            commands,
            announced: Arc::default(),
        };
        if let Some(older) = locked(&self.inner.channels).insert(key.clone(), entry) {
            tracing::info!(tenant = %key.tenant, endpoint = %key.name, "newer control channel; closing the older");
            let _ = older.commands.send(Command::Close(None));
        }
        (id, receiver)
    }

    /// Forgets channel `id` of the endpoint, unless a newer one replaced it.
    fn unregister(&self, key: &EndpointKey, id: u64) {
        let mut channels = locked(&self.inner.channels);
        if channels.get(key).is_some_and(|e| e.id == id) {
            channels.remove(key);
        }
    }

    /// Whether the endpoint has a control channel now.
    pub fn is_connected(&self, tenant: &str, endpoint: &str) -> bool {
        locked(&self.inner.channels).contains_key(&EndpointKey::new(tenant, endpoint))
    }

    /// Cuts an endpoint at once (RS-9): its tunnel gets `GoAway(revoked)`, its control
    /// channel `refused {revoked}` and closes.
    pub fn revoke(&self, tenant: &str, endpoint: &str) {
        let key = EndpointKey::new(tenant, endpoint);
        self.inner.relay.revoke(tenant, endpoint);
        if let Some(entry) = locked(&self.inner.channels).remove(&key) {
            let refused = ControlMessage::Refused {
                reason: RefusalReason::Revoked,
                message: format!("endpoint {endpoint} was revoked"),
            };
            let _ = entry.commands.send(Command::Close(Some(refused)));
            tracing::info!(tenant, endpoint, "endpoint revoked; control channel closed");
        }
    }

    /// Closes every channel and stops the session timers (the relay stops). Tunnels are
    /// closed by [`Relay::shut_down`].
    pub fn shut_down(&self) {
        for (_, entry) in locked(&self.inner.channels).drain() {
            let _ = entry.commands.send(Command::Close(None));
        }
        for (_, timer) in locked(&self.inner.timers).drain() {
            timer.abort();
        }
    }

    /// Synchronises every channel of the tenant with the store.
    pub async fn sync_tenant(&self, tenant: &str) {
        let keys: Vec<EndpointKey> = locked(&self.inner.channels)
            .keys()
            .filter(|k| k.tenant == tenant)
            .cloned()
            .collect();
        for key in keys {
            if let Err(error) = self.sync(&key).await {
                tracing::warn!(tenant, endpoint = %key.name, %error, "could not update a control channel");
            }
        }
        self.prune_timers(tenant).await;
        // No receiver is fine: nothing else carries this tenant's sessions now.
        let _ = self.inner.changes.send(tenant.to_string());
    }

    /// Stops the timers of the tenant's sessions that ended before their timeout.
    async fn prune_timers(&self, tenant: &str) {
        let open: HashSet<String> = match self.inner.store.connection_sessions(tenant, true).await {
            Ok(sessions) => sessions.into_iter().map(|s| s.id).collect(),
            Err(error) => {
                tracing::debug!(tenant, %error, "could not prune session timers");
                return;
            }
        };
        locked(&self.inner.timers).retain(|(t, id), timer| {
            let keep = t != tenant || open.contains(id);
            if !keep {
                timer.abort();
            }
            keep
        });
    }

    /// How many session timers run (for tests and metrics).
    pub fn timers(&self) -> usize {
        locked(&self.inner.timers).len()
    }

    /// Brings the sessions announced on the endpoint's channel in line with the store:
    /// `connect`/`permit` for open sessions it plays a part in and was not told of yet,
    /// `disconnect` for announced ones that ended. An endpoint no longer registered is cut.
    pub async fn sync(&self, key: &EndpointKey) -> Result<(), StoreError> {
        let Some((id, commands, announced)) = locked(&self.inner.channels)
            .get(key)
            .map(|e| (e.id, e.commands.clone(), e.announced.clone()))
        else {
            return Ok(());
        };
        let mut announced = announced.lock().await;
        let store = &self.inner.store;
        let me = store.endpoint(&key.tenant, &key.name).await?;
        let Some(me) = me.filter(|e| e.state == EndpointState::Registered) else {
            // Only if this channel is still the endpoint's current one.
            if locked(&self.inner.channels)
                .get(key)
                .is_some_and(|e| e.id == id)
            {
                self.revoke(&key.tenant, &key.name);
            }
            return Ok(());
        };
        let now = self.now();
        let mut wanted: HashMap<String, ControlMessage> = HashMap::new();
        let mut apps = HashMap::new();
        let sessions: Vec<_> = store
            .connection_sessions(&key.tenant, true)
            .await?
            .into_iter()
            .filter(|session| session.is_open(now))
            .collect();
        // Every channel rereads this every few seconds: the tenant's endpoints and sites are
        // read only for a site-bound endpoint (whether it listens depends on them), and only
        // while a session is open.
        let site_bound = matches!(me.binding, EndpointBinding::ServiceSite(_));
        let (endpoints, sites) = if site_bound && !sessions.is_empty() {
            (
                store.endpoints(&key.tenant).await?,
                store.sites(&key.tenant).await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        for session in sessions {
            if !apps.contains_key(&session.application) {
                let app = store.application(&key.tenant, &session.application).await?;
                apps.insert(session.application.clone(), app);
            }
            let Some(Some(app)) = apps.get(&session.application) else {
                continue;
            };
            let device_site = if site_bound {
                let device = store.device(&key.tenant, &session.device).await?;
                device.map(|d| d.site)
            } else {
                None
            };
            let device_sites = device_site
                .as_deref()
                .map(|site| crate::rules::site_chain(&sites, site))
                .unwrap_or_default();
            if let Some(part) = plan::part(&me, &session, app, &endpoints, &device_sites) {
                self.arm_timer(&session);
                wanted.insert(session.id.clone(), plan::message(part, &session, app, now));
            }
        }
        for (session, message) in wanted.iter() {
            if announced.insert(session.clone()) {
                let _ = commands.send(Command::Send(message.clone()));
            }
        }
        let gone: Vec<String> = announced
            .iter()
            .filter(|s| !wanted.contains_key(*s))
            .cloned()
            .collect();
        for session in gone {
            let reason = self.end_reason(&key.tenant, &session, now).await?;
            announced.remove(&session);
            let _ = commands.send(Command::Send(ControlMessage::Disconnect {
                session,
                reason,
            }));
        }
        Ok(())
    }

    /// Why an announced session no longer concerns an endpoint.
    async fn end_reason(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> Result<DisconnectReason, StoreError> {
        let session = self.inner.store.connection_session(tenant, id).await?;
        Ok(match session {
            Some(s) => match s.end_reason.as_deref() {
                Some("ended") => DisconnectReason::Ended,
                Some("timeout") => DisconnectReason::TimedOut,
                None if now >= s.ends_ms => DisconnectReason::TimedOut,
                // Revoked, unassigned, or the endpoint no longer plays its part.
                _ => DisconnectReason::Revoked,
            },
            None => DisconnectReason::Revoked,
        })
    }

    /// Starts the session's timer unless it runs already.
    fn arm_timer(&self, session: &ConnectionSessionRecord) {
        let key = (session.tenant.clone(), session.id.clone());
        let mut timers = locked(&self.inner.timers);
        if timers.contains_key(&key) {
            return;
        }
        let hub = self.clone();
        let (tenant, ends_ms) = (session.tenant.clone(), session.ends_ms);
        let left = ends_ms.saturating_sub(self.now()).max(0);
        let wait = Duration::from_millis(u64::try_from(left).unwrap_or(0));
        let task = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            locked(&hub.inner.timers).remove(&key);
            if let Err(error) = hub.expire(&tenant, ends_ms).await {
                tracing::warn!(%tenant, %error, "could not end timed-out connection sessions");
            }
            hub.sync_tenant(&tenant).await;
        });
        timers.insert(
            (session.tenant.clone(), session.id.clone()),
            task.abort_handle(),
        );
    }

    /// Ends the tenant's sessions due by now (or by `due_ms`, the timer's moment, if the
    /// clock lags it) and audits each, as the API does when it finds them.
    async fn expire(&self, tenant: &str, due_ms: i64) -> Result<(), StoreError> {
        let now = self.now().max(due_ms);
        let store = &self.inner.store;
        for s in store.expire_connection_sessions(tenant, now).await? {
            let mut random = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut random);
            let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
            store
                .add_audit(&AuditRecord {
                    tenant: tenant.to_string(),
                    id: format!("{now:013}-{suffix}"),
                    at_ms: now,
                    actor: s.user_name.clone(),
                    action: "connection.timeout".into(),
                    object: format!("connection/{}", s.id),
                    detail: format!("device {} application {}", s.device, s.application),
                })
                .await?;
            tracing::info!(tenant, session = %s.id, "connection session timed out");
        }
        Ok(())
    }
}

/// The REST API's reports, acted on in the background so that the API answers at once.
impl LiveEvents for ControlHub {
    fn sessions_changed(&self, tenant: &str) {
        let (hub, tenant) = (self.clone(), tenant.to_string());
        tokio::spawn(async move { hub.sync_tenant(&tenant).await });
    }

    fn endpoint_revoked(&self, tenant: &str, endpoint: &str) {
        self.revoke(tenant, endpoint);
        self.sessions_changed(tenant);
    }
}
