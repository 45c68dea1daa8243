//! Login sessions (ID-1): created at login, looked up on every request, ended at logout
//! or when a lifetime runs out (absolute since login, inactive since the last use).
//!
//! The store holds sessions (so a second node and a restart see them) under the SHA-256 of
//! their id. Each node keeps a copy in memory for `session_cache` and writes the last-use
//! time back at most every `session_write_back`, so a busy session costs no database write
//! per request.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portico_store::{SessionRecord, Store};
use tokio::sync::broadcast;

use crate::config::IdentityConfig;
use crate::error::IdentityError;
use crate::secret::{ms, now_ms, random_token, sha256_hex};

/// A session id as the client holds it (the cookie value). Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(pub String);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(***)")
    }
}

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A live session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub tenant: String,
    pub user_name: String,
    pub role: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
    /// The session's CSRF token (ID-5), sent in the `XSRF-TOKEN` cookie.
    pub csrf_token: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("tenant", &self.tenant)
            .field("user_name", &self.user_name)
            .field("role", &self.role)
            .field("created_ms", &self.created_ms)
            .field("last_used_ms", &self.last_used_ms)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The scopes the session's user holds: those of their role (none for a role this
    /// version does not know).
    pub fn scopes(&self) -> Vec<String> {
        self.role
            .parse::<crate::Role>()
            .map(crate::Role::scopes)
            .unwrap_or_default()
    }
}

struct Cached {
    record: SessionRecord,
    fetched: Instant,
    /// The last-use time the store has (as far as this node knows).
    written_ms: i64,
}

pub struct Sessions {
    store: Store,
    absolute_ms: i64,
    inactive_ms: i64,
    cache_for: Duration,
    write_back_ms: i64,
    cache: Mutex<HashMap<String, Cached>>,
    /// The id hashes of sessions ended on this node, for [`Sessions::ended`].
    ends: broadcast::Sender<String>,
}

impl Sessions {
    pub fn new(store: Store, config: &IdentityConfig) -> Sessions {
        let (ends, _) = broadcast::channel(256);
        Sessions {
            store,
            absolute_ms: ms(config.session_absolute),
            inactive_ms: ms(config.session_inactive),
            cache_for: config.session_cache,
            write_back_ms: ms(config.session_write_back),
            cache: Mutex::new(HashMap::new()),
            ends,
        }
    }

    /// Starts a session for the user; returns its id (256 random bits) and the session.
    pub async fn create(
        &self,
        tenant: &str,
        user_name: &str,
        role: &str,
    ) -> Result<(SessionId, Session), IdentityError> {
        let id = SessionId(random_token(32));
        let now = now_ms();
        let record = SessionRecord {
            id_hash: sha256_hex(id.as_str()),
            tenant: tenant.to_string(),
            user_name: user_name.to_string(),
            role: role.to_string(),
            created_ms: now,
            last_used_ms: now,
            csrf_token: crate::csrf::new_token(),
            ended_ms: None,
        };
        self.store.add_session(&record).await?;
        let session = to_session(&record);
        self.lock().insert(
            record.id_hash.clone(),
            Cached {
                record,
                fetched: Instant::now(),
                written_ms: now,
            },
        );
        Ok((id, session))
    }

    /// The live session with this id, marked as used now; `None` when it is unknown,
    /// ended or expired.
    pub async fn touch(&self, id: &str) -> Result<Option<Session>, IdentityError> {
        self.find(&sha256_hex(id), true).await
    }

    /// The live session with this id, without marking it used.
    pub async fn peek(&self, id: &str) -> Result<Option<Session>, IdentityError> {
        self.find(&sha256_hex(id), false).await
    }

    /// Ends the session (logout); false when it was not live.
    pub async fn end(&self, id: &str) -> Result<bool, IdentityError> {
        let hash = sha256_hex(id);
        let ended = self.store.end_session(&hash, now_ms()).await?;
        self.lock().remove(&hash);
        // Waiters re-check on any message, so a lost one (no receiver) is harmless.
        let _ = self.ends.send(hash);
        Ok(ended)
    }

    /// Drops this node's copies of a removed user's sessions (the store ended them), so
    /// that they end here at once rather than when the copies grow stale; other nodes
    /// see it within `session_cache`.
    pub fn forget_user(&self, tenant: &str, user_name: &str) {
        let mut gone = Vec::new();
        self.lock().retain(|hash, c| {
            let theirs = c.record.tenant == tenant && c.record.user_name == user_name;
            if theirs {
                gone.push(hash.clone());
            }
            !theirs
        });
        for hash in gone {
            // Waiters re-check on any message, so a lost one (no receiver) is harmless.
            let _ = self.ends.send(hash);
        }
    }

    /// Resolves when the session ends: at logout (on this node at once, on another within
    /// `session_cache`), when a lifetime runs out, or at once when it is not live. A store
    /// that cannot be read does not end it: the check is retried.
    pub fn ended(self: &Arc<Self>, id: &str) -> impl Future<Output = ()> + Send + 'static {
        let this = Arc::clone(self);
        let hash = sha256_hex(id);
        let mut ends = self.ends.subscribe();
        async move {
            loop {
                let wait = match this.find(&hash, false).await {
                    Ok(Some(s)) => {
                        let left = this.deadline_ms(&s) - now_ms();
                        Duration::from_millis(u64::try_from(left.max(0)).unwrap_or(0))
                            .min(this.cache_for)
                    }
                    Ok(None) => return,
                    Err(_) => this.cache_for,
                };
                let sleep = tokio::time::sleep(wait + Duration::from_millis(1));
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        message = ends.recv() => match message {
                            Ok(h) if h == hash => return,
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            }
        }
    }

    /// Writes back pending last-use times and drops cached copies that are stale or no
    /// longer live.
    pub async fn maintain(&self) {
        let now = now_ms();
        let pending: Vec<(String, i64)> = {
            let mut cache = self.lock();
            let cache_for = self.cache_for;
            let pending = cache
                .iter()
                .filter(|(_, c)| c.record.last_used_ms > c.written_ms)
                .map(|(h, c)| (h.clone(), c.record.last_used_ms))
                .collect();
            cache.retain(|_, c| {
                self.is_live(&c.record, now) && c.fetched.elapsed() < cache_for * 12
            });
            pending
        };
        for (hash, used) in pending {
            match self.store.touch_session(&hash, used).await {
                Ok(()) => {
                    if let Some(c) = self.lock().get_mut(&hash) {
                        c.written_ms = c.written_ms.max(used);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a session's last use"),
            }
        }
        let horizon = now.saturating_sub(self.absolute_ms.max(self.inactive_ms));
        if let Err(e) = self.store.purge_sessions(horizon).await {
            tracing::warn!(error = %e, "cannot purge old sessions");
        }
    }

    async fn find(&self, hash: &str, use_now: bool) -> Result<Option<Session>, IdentityError> {
        let now = now_ms();
        let fresh = self.cached(hash, now, use_now);
        let (session, write) = match fresh {
            Some(found) => found,
            None => {
                let Some(record) = self.store.session(hash).await? else {
                    self.lock().remove(hash);
                    return Ok(None);
                };
                self.remember(record, now, use_now)
            }
        };
        if let Some(used) = write {
            self.store.touch_session(hash, used).await?;
        }
        Ok(session)
    }

    /// From the cache when the copy is fresh: the session (None when not live) and the
    /// last-use time to write back, if one is due.
    #[allow(clippy::type_complexity)]
    fn cached(
        &self,
        hash: &str,
        now: i64,
        use_now: bool,
    ) -> Option<(Option<Session>, Option<i64>)> {
        let mut cache = self.lock();
        let entry = cache.get_mut(hash)?;
        if entry.fetched.elapsed() >= self.cache_for {
            return None;
        }
        Some(self.apply_use(entry, now, use_now))
    }

    /// Caches a record read from the store, keeping a later last use known here.
    fn remember(
        &self,
        record: SessionRecord,
        now: i64,
        use_now: bool,
    ) -> (Option<Session>, Option<i64>) {
        let mut cache = self.lock();
        let known_use = cache.get(&record.id_hash).map(|c| c.record.last_used_ms);
        let written_ms = record.last_used_ms;
        let mut entry = Cached {
            record,
            fetched: Instant::now(),
            written_ms,
        };
        if let Some(used) = known_use {
            entry.record.last_used_ms = entry.record.last_used_ms.max(used);
        }
        let answer = self.apply_use(&mut entry, now, use_now);
        cache.insert(entry.record.id_hash.clone(), entry);
        answer
    }

    fn apply_use(
        &self,
        entry: &mut Cached,
        now: i64,
        use_now: bool,
    ) -> (Option<Session>, Option<i64>) {
        if !self.is_live(&entry.record, now) {
            return (None, None);
        }
        let mut write = None;
        if use_now {
            entry.record.last_used_ms = entry.record.last_used_ms.max(now);
            if now - entry.written_ms >= self.write_back_ms {
                entry.written_ms = now;
                write = Some(now);
            }
        }
        (Some(to_session(&entry.record)), write)
    }

    fn is_live(&self, record: &SessionRecord, now: i64) -> bool {
        record.ended_ms.is_none()
            && now < record.created_ms.saturating_add(self.absolute_ms)
            && now < record.last_used_ms.saturating_add(self.inactive_ms)
    }

    fn deadline_ms(&self, s: &Session) -> i64 {
        s.created_ms
            .saturating_add(self.absolute_ms)
            .min(s.last_used_ms.saturating_add(self.inactive_ms))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn to_session(r: &SessionRecord) -> Session {
    Session {
        tenant: r.tenant.clone(),
        user_name: r.user_name.clone(),
        role: r.role.clone(),
        created_ms: r.created_ms,
        last_used_ms: r.last_used_ms,
        csrf_token: r.csrf_token.clone(),
    }
}
