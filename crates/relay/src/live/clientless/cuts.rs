//! Ending what a connection session carries in the browser: one cancellation token per
//! session with clientless streams open, cancelled as soon as the session is found ended
//! (by its user, its timeout, an unassignment or a revocation), which drops the session's
//! tunnel streams, so a WebSocket through the host closes at once.
//!
//! The control hub reports every change of a tenant's sessions; the tenant's sessions with
//! open streams are then reread. A periodic recheck catches what no report announced (a
//! session ended by another node or on the store).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use portico_store::Store;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::api::Clock;

/// The sessions with clientless streams open, by tenant and id.
#[derive(Default)]
pub struct Cuts {
    tokens: Mutex<HashMap<(String, String), CancellationToken>>,
}

impl Cuts {
    fn tokens(&self) -> MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A token cancelled when session `tenant`/`id` is cut.
    pub fn token(&self, tenant: &str, id: &str) -> CancellationToken {
        self.tokens()
            .entry((tenant.to_string(), id.to_string()))
            .or_default()
            .child_token()
    }

    /// Cuts every stream of the session.
    pub fn cut(&self, tenant: &str, id: &str) {
        let removed = self.tokens().remove(&(tenant.to_string(), id.to_string()));
        if let Some(token) = removed {
            tracing::info!(
                tenant,
                session = id,
                "connection session ended; clientless streams cut"
            );
            token.cancel();
        }
    }

    /// The watched sessions of `tenant`, or of every tenant.
    fn watched(&self, tenant: Option<&str>) -> Vec<(String, String)> {
        self.tokens()
            .keys()
            .filter(|(t, _)| tenant.is_none_or(|wanted| wanted == t))
            .cloned()
            .collect()
    }

    /// Rereads the watched sessions (of `tenant`, or all) and cuts those no longer open.
    /// A store that fails to answer cuts nothing; the next recheck tries again.
    async fn recheck(&self, store: &Store, clock: &Clock, tenant: Option<&str>) {
        for (tenant, id) in self.watched(tenant) {
            match store.connection_session(&tenant, &id).await {
                Ok(Some(session)) if session.is_open(clock()) => {}
                Ok(_) => self.cut(&tenant, &id),
                Err(error) => {
                    tracing::warn!(%tenant, session = %id, %error, "could not recheck a session")
                }
            }
        }
    }
}

/// Keeps `cuts` in line with the store until `cuts` is dropped: on every report of a
/// tenant whose sessions changed, and every `recheck`.
pub fn watch(
    cuts: Weak<Cuts>,
    store: Store,
    clock: Clock,
    mut changes: broadcast::Receiver<String>,
    recheck: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(recheck);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let tenant = tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(tenant) => Some(tenant),
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => None,
            };
            let Some(cuts) = cuts.upgrade() else {
                return;
            };
            cuts.recheck(&store, &clock, tenant.as_deref()).await;
        }
    });
}

/// For tests and metrics: how many sessions have clientless streams watched.
impl Cuts {
    pub fn watched_sessions(&self) -> usize {
        self.tokens().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cutting_a_session_cancels_its_streams_only() {
        let cuts = Arc::new(Cuts::default());
        let a1 = cuts.token("acme", "a");
        let a2 = cuts.token("acme", "a");
        let b = cuts.token("acme", "b");
        let other_tenant = cuts.token("beta", "a");
        cuts.cut("acme", "a");
        assert!(a1.is_cancelled() && a2.is_cancelled());
        assert!(!b.is_cancelled() && !other_tenant.is_cancelled());
        assert_eq!(cuts.watched_sessions(), 2);
        assert_eq!(cuts.watched(Some("beta")), [("beta".into(), "a".into())]);
    }
}
