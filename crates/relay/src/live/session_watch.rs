//! One recheck per open connection session, however many streams it carries (RS-8): a
//! session a user ended (or whose application was unassigned, or whose device endpoint was
//! revoked) stops its streams within the recheck interval.
//!
//! Each stream used to reread its session on its own, so the relay's database load grew
//! with the streams open (a web HMI behind a tunnel keeps dozens of connections), where it
//! should grow with the sessions. Now the first stream of a session starts a watch that
//! rechecks it every interval for as long as any stream of the session waits on it; the
//! watch ends with the session, or at the first recheck that finds no stream waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// Whether session `(tenant, id)` is still open: `Some(false)` when it has ended or is
/// gone, `None` when that could not be told now (the store failed), which keeps its streams
/// and retries at the next recheck.
pub type SessionCheck =
    Arc<dyn Fn(String, String) -> BoxFuture<'static, Option<bool>> + Send + Sync>;

type SessionKey = (String, String);

/// The watched sessions of a relay node.
pub struct SessionWatches {
    check: SessionCheck,
    every: Duration,
    /// Each watched session's sender: `true` once the session has ended. Its watch task
    /// holds the only strong reference, so a task that is gone (its runtime stopped, or a
    /// check panicked) drops the sender: its streams then end rather than go unwatched,
    /// and the session's next stream starts a new watch.
    watched: Mutex<HashMap<SessionKey, Weak<watch::Sender<bool>>>>,
}

impl SessionWatches {
    pub fn new(every: Duration, check: SessionCheck) -> Arc<SessionWatches> {
        Arc::new(SessionWatches {
            check,
            every,
            watched: Mutex::default(),
        })
    }

    /// Returns once session `id` of `tenant` is no longer open (seen at a recheck).
    pub async fn ended(self: &Arc<Self>, tenant: &str, id: &str) {
        let mut ended = self.subscribe(tenant, id);
        // An error means the watch is gone without saying: its streams end (fail closed).
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// How many sessions are watched now.
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.lock().len()
    }

    fn subscribe(self: &Arc<Self>, tenant: &str, id: &str) -> watch::Receiver<bool> {
        let key = (tenant.to_string(), id.to_string());
        let mut watched = self.lock();
        if let Some(sender) = watched.get(&key).and_then(Weak::upgrade) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(false);
        let sender = Arc::new(sender);
        watched.insert(key.clone(), Arc::downgrade(&sender));
        tokio::spawn(Arc::clone(self).watch(key, sender));
        receiver
    }

    async fn watch(self: Arc<Self>, key: SessionKey, sender: Arc<watch::Sender<bool>>) {
        loop {
            tokio::time::sleep(self.every).await;
            {
                // Under the lock, so that a stream subscribing now either finds this watch
                // before it goes or starts a new one.
                let mut watched = self.lock();
                if sender.receiver_count() == 0 {
                    watched.remove(&key);
                    return;
                }
            }
            if (self.check)(key.0.clone(), key.1.clone()).await == Some(false) {
                self.lock().remove(&key);
                sender.send_replace(true);
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionKey, Weak<watch::Sender<bool>>>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const EVERY: Duration = Duration::from_secs(5);

    /// Watches whose check counts its calls and answers `open` (or "cannot tell" while
    /// `failing`).
    fn counting(
        open: Arc<AtomicBool>,
        failing: Arc<AtomicBool>,
    ) -> (Arc<SessionWatches>, Arc<AtomicUsize>) {
        let checks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&checks);
        let check: SessionCheck = Arc::new(move |_tenant, _id| {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = if failing.load(Ordering::SeqCst) {
                None
            } else {
                Some(open.load(Ordering::SeqCst))
            };
            Box::pin(async move { answer })
        });
        (SessionWatches::new(EVERY, check), checks)
    }

    fn flag(value: bool) -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(value))
    }

    #[tokio::test(start_paused = true)]
    async fn many_streams_of_a_session_share_one_recheck_and_all_end_with_it() {
        let open = flag(true);
        let (watches, checks) = counting(open.clone(), flag(false));
        let streams: Vec<_> = (0..50)
            .map(|_| {
                let watches = Arc::clone(&watches);
                tokio::spawn(async move { watches.ended("abc", "s-1").await })
            })
            .collect();
        tokio::time::sleep(EVERY * 3 + EVERY / 2).await;
        assert_eq!(checks.load(Ordering::SeqCst), 3, "one read per interval");
        assert!(streams.iter().all(|s| !s.is_finished()));
        assert_eq!(watches.watched(), 1);

        open.store(false, Ordering::SeqCst);
        tokio::time::sleep(EVERY).await;
        for stream in streams {
            tokio::time::timeout(Duration::from_millis(1), stream)
                .await
                .expect("every stream of the ended session returns")
                .unwrap();
        }
        assert_eq!(watches.watched(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_are_watched_apart_and_a_watch_without_streams_stops() {
        let (watches, checks) = counting(flag(true), flag(false));
        let first = {
            let watches = Arc::clone(&watches);
            tokio::spawn(async move { watches.ended("abc", "s-1").await })
        };
        let other = {
            let watches = Arc::clone(&watches);
            tokio::spawn(async move { watches.ended("abc", "s-2").await })
        };
        tokio::time::sleep(EVERY / 2).await;
        assert_eq!(watches.watched(), 2);
        first.abort();
        other.abort();
        let _ = (first.await, other.await);
        tokio::time::sleep(EVERY).await;
        assert_eq!(watches.watched(), 0, "no stream waits: the watches stopped");
        assert_eq!(checks.load(Ordering::SeqCst), 0, "and read nothing");
    }

    #[test]
    fn streams_end_when_their_watch_is_gone_without_a_word() {
        let (watches, _checks) = counting(flag(true), flag(false));
        // The watch task lives on a runtime that stops; the stream waits on another.
        let doomed = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let receiver = doomed.block_on(async { watches.subscribe("abc", "s-1") });
        drop(doomed);
        let waiting = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        waiting.block_on(async {
            let mut receiver = receiver;
            let seen = tokio::time::timeout(Duration::from_secs(5), receiver.wait_for(|e| *e))
                .await
                .expect("the stream does not wait for a watch that is gone");
            assert!(seen.is_err(), "the sender went with its task");
            // The session's next stream starts a watch of its own.
            let _next = watches.subscribe("abc", "s-1");
            assert_eq!(watches.watched(), 1);
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_cannot_tell_keeps_the_streams_and_retries() {
        let open = flag(true);
        let failing = flag(true);
        let (watches, checks) = counting(open.clone(), failing.clone());
        let stream = {
            let watches = Arc::clone(&watches);
            tokio::spawn(async move { watches.ended("abc", "s-1").await })
        };
        tokio::time::sleep(EVERY * 2 + EVERY / 2).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2);
        assert!(!stream.is_finished(), "a failing store cuts nothing");

        failing.store(false, Ordering::SeqCst);
        open.store(false, Ordering::SeqCst);
        tokio::time::sleep(EVERY).await;
        tokio::time::timeout(Duration::from_millis(1), stream)
            .await
            .expect("ended at the next recheck that could tell")
            .unwrap();
    }
}
