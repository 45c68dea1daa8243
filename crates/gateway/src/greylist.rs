//! Greylisting of slow backends (SPEC GW-14).
//!
//! Every HTTP backend endpoint is watched for the time to its response head. An endpoint
//! is *slow* while its last response head took longer than `greylist.slow_response`, or
//! while one of its requests is still waiting past that time; a slow observation is
//! forgotten after `greylist.duration`, and a fast response forgets it at once. When the
//! instance is busy (connections in use above `load_threshold` of `max_connections`), a
//! slow endpoint is greylisted for `greylist.duration`. While greylisted it gets requests
//! only while the load is below `admit_below`; other requests are refused in mode
//! `enforce`, and forwarded but counted in mode `report`.
//!
//! An endpoint is what a registration's backend URL names: scheme, authority and base
//! path ([`endpoint_key`]). Registrations sharing one backend URL share its state, since
//! they share its slowness; state outlives registry reloads for the same reason.
//!
//! Healthy traffic takes no lock: while no endpoint has any state, admission and fast
//! responses only read one atomic counter.

use crate::config::{GreylistConfig, GreylistMode};
use crate::metrics::{GreylistChange, GreylistMetrics, GreylistOutcome};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The longest `Retry-After` a refused request is given: the greylisting may end sooner
/// for it, as soon as the instance's load drops below `admit_below`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The endpoint a backend URL names, as greylisting and its log lines know it.
pub fn endpoint_key(scheme_authority: &str, base_path: &str) -> String {
    format!("{scheme_authority}{base_path}")
}

/// What greylisting decides for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Forward,
    /// Answer `503 Backend service is too slow`, suggesting a retry after this long.
    Refuse {
        retry_after: Duration,
    },
}

/// The greylisting state of every endpoint with something to remember; cheap to clone.
#[derive(Clone)]
pub struct Greylist {
    shared: Arc<Shared>,
}

struct Shared {
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// The number of entries in `endpoints`, readable without the lock.
    tracked: AtomicUsize,
    metrics: GreylistMetrics,
}

#[derive(Debug, Default)]
struct Endpoint {
    /// When a response head last took longer than `slow_response`, or a request last
    /// passed that time still waiting; cleared by a fast response.
    slow_seen: Option<Instant>,
    /// Requests waiting for their response head past `slow_response` now.
    overdue: usize,
    /// Set while greylisted.
    greylisted_until: Option<Instant>,
}

impl Endpoint {
    /// Slow observations are remembered for `memory` (the greylisting duration).
    fn is_slow(&self, now: Instant, memory: Duration) -> bool {
        self.overdue > 0
            || self
                .slow_seen
                .is_some_and(|seen| now.saturating_duration_since(seen) < memory)
    }

    /// Nothing left to remember: the entry can go.
    fn is_forgettable(&self, now: Instant, memory: Duration) -> bool {
        self.greylisted_until.is_none() && !self.is_slow(now, memory)
    }

    /// Greylists a slow endpoint while the instance is busy; the end time when it did.
    fn greylist_if_busy(
        &mut self,
        now: Instant,
        load: f64,
        settings: &GreylistConfig,
    ) -> Option<Instant> {
        if self.greylisted_until.is_some()
            || load <= settings.load_threshold
            || !self.is_slow(now, settings.duration)
        {
            return None;
        }
        let until = now + settings.duration;
        self.greylisted_until = Some(until);
        Some(until)
    }

    /// Ends a greylisting whose time is up; true when it did.
    fn release_if_due(&mut self, now: Instant) -> bool {
        match self.greylisted_until {
            Some(until) if until <= now => {
                self.greylisted_until = None;
                true
            }
            _ => false,
        }
    }
}

impl Greylist {
    pub fn new(metrics: GreylistMetrics) -> Greylist {
        Greylist {
            shared: Arc::new(Shared {
                endpoints: Mutex::new(HashMap::new()),
                tracked: AtomicUsize::new(0),
                metrics,
            }),
        }
    }

    /// Decides whether a request may go to `endpoint` now, with the instance at `load()`
    /// (share of `max_connections` in use), asked only when the endpoint has a record.
    pub fn admit(
        &self,
        endpoint: &str,
        load: impl Fn() -> f64,
        settings: &GreylistConfig,
    ) -> Admission {
        if self.shared.tracked.load(Ordering::Acquire) == 0 {
            return Admission::Forward;
        }
        let now = Instant::now();
        let mut endpoints = self.lock();
        let Some(state) = endpoints.get_mut(endpoint) else {
            return Admission::Forward;
        };
        let load = load();
        if state.release_if_due(now) {
            self.released(endpoint, &endpoints);
        }
        let Some(state) = endpoints.get_mut(endpoint) else {
            return Admission::Forward;
        };
        if let Some(until) = state.greylist_if_busy(now, load, settings) {
            self.greylisted(endpoint, until, load, settings, &endpoints);
        }
        let admission = match endpoints.get(endpoint).and_then(|s| s.greylisted_until) {
            Some(until) if load >= settings.admit_below => {
                self.turn_away(endpoint, until, now, settings)
            }
            _ => Admission::Forward,
        };
        self.forget_if_done(&mut endpoints, endpoint, now, settings.duration);
        admission
    }

    /// Awaits `response` (a request to `endpoint` until its response head) and records
    /// how long it took. A request still waiting after `slow_response` makes its endpoint
    /// slow at that moment, without waiting for the answer. One still waiting after
    /// `give_up` is abandoned with `timed_out()`.
    ///
    /// Both moments are served by one timer, moved from the first to the second: a
    /// request's timers cost as much as the rest of its greylisting.
    pub async fn time<T, E>(
        &self,
        endpoint: &str,
        settings: &GreylistConfig,
        load: impl Fn() -> f64,
        (give_up, timed_out): (Duration, impl FnOnce() -> E),
        // Pinned by the caller: taken by value, the future would be held twice in this
        // one's state (once as the argument, once pinned), and request futures are
        // copied whole as they start.
        mut response: Pin<&mut impl Future<Output = Result<T, E>>>,
    ) -> Result<T, E> {
        let started = tokio::time::Instant::now();
        let slow_at = started + settings.slow_response;
        let give_up_at = started + give_up;
        let timer = tokio::time::sleep_until(slow_at.min(give_up_at));
        tokio::pin!(timer);
        let early = tokio::select! {
            biased;
            result = response.as_mut() => Some(result),
            () = timer.as_mut() => None,
        };
        if let Some(result) = early {
            if started.elapsed() > settings.slow_response {
                self.observed_slow(endpoint, load(), settings);
            } else if result.is_ok() {
                // An error (backend refused, gone) says nothing about its speed.
                self.observed_fast(endpoint, settings);
            }
            return result;
        }
        if give_up_at < slow_at {
            // Abandoned before it was slow by greylisting's measure: not counted.
            return Err(timed_out());
        }
        let _overdue = self.overdue(endpoint, load(), settings);
        timer.as_mut().reset(give_up_at);
        let result = tokio::select! {
            biased;
            result = response => result,
            () = timer => Err(timed_out()),
        };
        self.observed_slow(endpoint, load(), settings);
        result
    }

    /// The endpoints greylisted now.
    pub fn greylisted_endpoints(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, state)| state.greylisted_until.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn observed_fast(&self, endpoint: &str, settings: &GreylistConfig) {
        if self.shared.tracked.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut endpoints = self.lock();
        if let Some(state) = endpoints.get_mut(endpoint) {
            state.slow_seen = None;
            self.forget_if_done(&mut endpoints, endpoint, Instant::now(), settings.duration);
        }
    }

    fn observed_slow(&self, endpoint: &str, load: f64, settings: &GreylistConfig) {
        self.mark_slow(endpoint, load, settings, |_| {});
    }

    /// Counts a request waiting past `slow_response` until the returned guard drops.
    fn overdue(&self, endpoint: &str, load: f64, settings: &GreylistConfig) -> Overdue {
        self.mark_slow(endpoint, load, settings, |state| state.overdue += 1);
        Overdue {
            greylist: self.clone(),
            endpoint: endpoint.to_string(),
            memory: settings.duration,
        }
    }

    fn mark_slow(
        &self,
        endpoint: &str,
        load: f64,
        settings: &GreylistConfig,
        also: impl FnOnce(&mut Endpoint),
    ) {
        let now = Instant::now();
        let mut endpoints = self.lock();
        let state = endpoints.entry(endpoint.to_string()).or_default();
        state.slow_seen = Some(now);
        also(state);
        let released = state.release_if_due(now);
        let greylisted = state.greylist_if_busy(now, load, settings);
        self.shared
            .tracked
            .store(endpoints.len(), Ordering::Release);
        if released {
            self.released(endpoint, &endpoints);
        }
        if let Some(until) = greylisted {
            self.greylisted(endpoint, until, load, settings, &endpoints);
        }
    }

    fn turn_away(
        &self,
        endpoint: &str,
        until: Instant,
        now: Instant,
        settings: &GreylistConfig,
    ) -> Admission {
        match settings.mode {
            GreylistMode::Enforce => {
                self.shared.metrics.turned_away(GreylistOutcome::Refused);
                let left = until.saturating_duration_since(now);
                Admission::Refuse {
                    retry_after: left.clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
                }
            }
            GreylistMode::Report => {
                self.shared.metrics.turned_away(GreylistOutcome::Forwarded);
                tracing::debug!(
                    endpoint,
                    "request to a greylisted endpoint forwarded (report mode)"
                );
                Admission::Forward
            }
        }
    }

    fn greylisted(
        &self,
        endpoint: &str,
        until: Instant,
        load: f64,
        settings: &GreylistConfig,
        endpoints: &HashMap<String, Endpoint>,
    ) {
        tracing::warn!(
            endpoint,
            load,
            slow_response_ms = settings.slow_response.as_millis() as u64,
            duration_s = settings.duration.as_secs_f64(),
            mode = ?settings.mode,
            "slow backend endpoint greylisted while the gateway is busy"
        );
        self.shared.metrics.changed(GreylistChange::Greylisted);
        self.count_greylisted(endpoints);
        self.release_at(endpoint.to_string(), until, settings.duration);
    }

    fn released(&self, endpoint: &str, endpoints: &HashMap<String, Endpoint>) {
        tracing::info!(endpoint, "backend endpoint released from the greylist");
        self.shared.metrics.changed(GreylistChange::Released);
        self.count_greylisted(endpoints);
    }

    /// Releases the endpoint when its time is up, also when no request asks for it.
    fn release_at(&self, endpoint: String, until: Instant, memory: Duration) {
        let greylist = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            let now = Instant::now();
            let mut endpoints = greylist.lock();
            let released = endpoints
                .get_mut(&endpoint)
                .is_some_and(|state| state.release_if_due(now));
            if released {
                greylist.released(&endpoint, &endpoints);
                greylist.forget_if_done(&mut endpoints, &endpoint, now, memory);
            }
        });
    }

    fn count_greylisted(&self, endpoints: &HashMap<String, Endpoint>) {
        let greylisted = endpoints
            .values()
            .filter(|state| state.greylisted_until.is_some())
            .count();
        self.shared.metrics.set_greylisted(greylisted);
    }

    fn forget_if_done(
        &self,
        endpoints: &mut HashMap<String, Endpoint>,
        endpoint: &str,
        now: Instant,
        memory: Duration,
    ) {
        if endpoints
            .get(endpoint)
            .is_some_and(|state| state.is_forgettable(now, memory))
        {
            endpoints.remove(endpoint);
        }
        self.shared
            .tracked
            .store(endpoints.len(), Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Endpoint>> {
        // The map stays consistent between statements; a panic elsewhere leaves it usable.
        self.shared
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request waiting past `slow_response`; dropped when its response head arrives or
/// the request is abandoned.
struct Overdue {
    greylist: Greylist,
    endpoint: String,
    memory: Duration,
}

impl Drop for Overdue {
    fn drop(&mut self) {
        let mut endpoints = self.greylist.lock();
        if let Some(state) = endpoints.get_mut(&self.endpoint) {
            state.overdue = state.overdue.saturating_sub(1);
        }
        self.greylist
            .forget_if_done(&mut endpoints, &self.endpoint, Instant::now(), self.memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: GreylistMode) -> GreylistConfig {
        GreylistConfig {
            mode,
            slow_response: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            load_threshold: 0.5,
            admit_below: 0.5,
        }
    }

    /// A give-up deadline no test reaches.
    const NEVER: (Duration, fn() -> ()) = (Duration::from_secs(3600), || ());

    async fn answer_after<E>(ms: u64) -> Result<(), E> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    #[tokio::test]
    async fn a_slow_endpoint_is_greylisted_only_when_busy_and_refused_only_while_busy() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let s = settings(GreylistMode::Enforce);
        greylist
            .time(
                "http://a",
                &s,
                || 0.1,
                NEVER,
                std::pin::pin!(answer_after(80)),
            )
            .await
            .unwrap();
        assert!(
            greylist.greylisted_endpoints().is_empty(),
            "idle: not greylisted"
        );
        assert_eq!(greylist.admit("http://a", || 0.1, &s), Admission::Forward);
        assert!(matches!(
            greylist.admit("http://a", || 0.9, &s),
            Admission::Refuse { .. }
        ));
        assert_eq!(greylist.greylisted_endpoints(), ["http://a"]);
        assert_eq!(greylist.admit("http://a", || 0.25, &s), Admission::Forward);
        assert_eq!(greylist.admit("http://b", || 0.9, &s), Admission::Forward);
    }

    #[tokio::test]
    async fn report_mode_forwards_and_a_fast_answer_forgets_slowness() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let s = settings(GreylistMode::Report);
        greylist
            .time(
                "http://a",
                &s,
                || 0.9,
                NEVER,
                std::pin::pin!(answer_after(80)),
            )
            .await
            .unwrap();
        assert_eq!(greylist.greylisted_endpoints(), ["http://a"]);
        assert_eq!(greylist.admit("http://a", || 0.9, &s), Admission::Forward);
        greylist
            .time(
                "http://a",
                &s,
                || 0.1,
                NEVER,
                std::pin::pin!(answer_after(0)),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(greylist.greylisted_endpoints().is_empty(), "released");
        assert_eq!(greylist.admit("http://a", || 0.9, &s), Admission::Forward);
        assert!(greylist.greylisted_endpoints().is_empty(), "fast since");
        assert_eq!(greylist.shared.tracked.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_request_still_waiting_makes_its_endpoint_slow_and_abandoning_it_counts_down() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let s = settings(GreylistMode::Enforce);
        let answer = std::pin::pin!(answer_after(10_000));
        let waiting = greylist.time("http://a", &s, || 0.9, NEVER, answer);
        let _ = tokio::time::timeout(Duration::from_millis(120), waiting).await;
        assert_eq!(greylist.greylisted_endpoints(), ["http://a"]);
        let overdue = greylist.lock().get("http://a").map(|e| e.overdue);
        assert_eq!(overdue, Some(0), "the abandoned request no longer counts");
    }

    /// Times a request that never answers, given up after `ms` (with `slow_response` at
    /// 50 ms): what it returned, and when.
    async fn given_up_after(greylist: &Greylist, ms: u64) -> (Result<(), &'static str>, Duration) {
        let s = settings(GreylistMode::Enforce);
        let started = tokio::time::Instant::now();
        let answer = std::pin::pin!(answer_after(10_000));
        let give_up = (Duration::from_millis(ms), || "gave up");
        let result = greylist.time("http://a", &s, || 0.9, give_up, answer).await;
        (result, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_past_give_up_is_abandoned_and_its_endpoint_was_slow() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let (result, took) = given_up_after(&greylist, 150).await;
        assert_eq!(result, Err("gave up"));
        assert_eq!(took, Duration::from_millis(150));
        assert_eq!(greylist.greylisted_endpoints(), ["http://a"]);
        let overdue = greylist.lock().get("http://a").map(|e| e.overdue);
        assert_eq!(overdue, Some(0), "the abandoned request no longer counts");
    }

    #[tokio::test(start_paused = true)]
    async fn a_give_up_before_the_slow_mark_does_not_count_as_slow() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let (result, took) = given_up_after(&greylist, 20).await;
        assert_eq!(result, Err("gave up"));
        assert_eq!(took, Duration::from_millis(20));
        assert!(greylist.greylisted_endpoints().is_empty());
        assert_eq!(greylist.shared.tracked.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_give_up_at_the_slow_mark_counts_as_slow() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let slow_response = settings(GreylistMode::Enforce).slow_response;
        let (result, _) = given_up_after(&greylist, slow_response.as_millis() as u64).await;
        assert_eq!(result, Err("gave up"));
        assert_eq!(greylist.greylisted_endpoints(), ["http://a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_between_the_slow_mark_and_give_up_is_returned_and_slow() {
        let greylist = Greylist::new(GreylistMetrics::default());
        let s = settings(GreylistMode::Enforce);
        let answer = std::pin::pin!(answer_after(100));
        let give_up = (Duration::from_millis(150), || ());
        let result = greylist.time("http://a", &s, || 0.9, give_up, answer).await;
        assert_eq!(result, Ok(()));
        assert_eq!(greylist.greylisted_endpoints(), ["http://a"]);
    }
}
