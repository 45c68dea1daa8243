//! When to try again after the tunnel to the backend is lost or cannot be opened.
//!
//! Exponential backoff with full jitter: after the n-th failure in a row the agent waits a
//! uniformly random time between zero and `min(cap, initial · 2ⁿ)`. The randomness spreads
//! the reconnects of many agents after a backend restart; the cap bounds how long an agent
//! stays away once the backend is back. A connection that lived at least `healthy_after`
//! counts as a success, so the next loss starts again from `initial`.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub cap: Duration,
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The longest wait after `failures` failures in a row (0 = the first failure).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    /// The wait for a `unit` drawn uniformly from [0, 1]; values outside are clamped.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let unit = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        self.ceiling(failures).mul_f64(unit)
    }
}

/// The schedule's state: how many attempts in a row have failed.
#[derive(Clone, Debug)]
pub struct Schedule {
    backoff: Backoff,
    failures: u32,
}

impl Schedule {
    pub fn new(backoff: Backoff) -> Self {
        Schedule {
            backoff,
            failures: 0,
        }
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records the end of an attempt whose connection lived `lived` (zero if it never
    /// opened) and returns how long to wait before the next, given a uniform `unit`.
    pub fn after_attempt(&mut self, lived: Duration, unit: f64) -> Duration {
        if lived >= self.backoff.healthy_after {
            self.failures = 0;
        }
        let delay = self.backoff.delay(self.failures, unit);
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

/// Runs `attempt` (one connection, from dialing until it ends) again and again with the
/// schedule's waits in between, until `shutdown` is cancelled. An attempt's error is logged,
/// never fatal: the agent keeps trying, as an unattended device must.
pub async fn run<F, Fut, E>(backoff: Backoff, shutdown: CancellationToken, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut schedule = Schedule::new(backoff);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = attempt() => outcome,
        };
        let lived = started.elapsed();
        let wait = schedule.after_attempt(lived, rand::thread_rng().gen_range(0.0..=1.0));
        match outcome {
            Ok(()) => tracing::info!(?lived, ?wait, "tunnel to the backend ended; reconnecting"),
            Err(error) => tracing::warn!(
                %error,
                failures = schedule.failures(),
                ?wait,
                "tunnel to the backend failed; reconnecting"
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let ceilings: Vec<u64> = (0..9).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(
            b.ceiling(u32::MAX),
            S(60),
            "no overflow however long it fails"
        );
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling() {
        let b = Backoff::default();
        for failures in 0..40 {
            assert_eq!(b.delay(failures, 0.0), Duration::ZERO);
            assert_eq!(b.delay(failures, 1.0), b.ceiling(failures));
            assert_eq!(b.delay(failures, 0.5), b.ceiling(failures) / 2);
            assert!(b.delay(failures, 7.0) <= S(60));
            assert_eq!(b.delay(failures, -1.0), Duration::ZERO);
            assert_eq!(b.delay(failures, f64::NAN), Duration::ZERO);
        }
        // With real randomness, every draw lies within the bounds.
        let mut rng = rand::thread_rng();
        for failures in 0..12 {
            for _ in 0..200 {
                let d = b.delay(failures, rng.gen_range(0.0..=1.0));
                assert!(d <= b.ceiling(failures) && d <= b.cap);
            }
        }
    }

    #[test]
    fn a_long_lived_connection_resets_the_schedule() {
        let mut s = Schedule::new(Backoff::default());
        let full: Vec<Duration> = (0..8)
            .map(|_| s.after_attempt(Duration::ZERO, 1.0))
            .collect();
        assert_eq!(full, [S(1), S(2), S(4), S(8), S(16), S(32), S(60), S(60)]);
        // Lived, but not long enough to count as healthy: keeps growing.
        assert_eq!(s.after_attempt(S(59), 1.0), S(60));
        assert_eq!(s.after_attempt(S(60), 1.0), S(1));
        assert_eq!(s.after_attempt(S(0), 1.0), S(2));
    }

    #[tokio::test]
    async fn run_retries_until_shut_down() {
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            healthy_after: S(60),
        };
        let shutdown = CancellationToken::new();
        let attempts = Arc::new(AtomicU32::new(0));
        let (a, stop) = (attempts.clone(), shutdown.clone());
        let runner = run(backoff, shutdown.clone(), move || {
            let (a, stop) = (a.clone(), stop.clone());
            async move {
                if a.fetch_add(1, Ordering::SeqCst) + 1 == 5 {
                    stop.cancel();
                }
                Err::<(), _>("backend unreachable")
            }
        });
        tokio::time::timeout(S(10), runner).await.unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 5);
    }
}
