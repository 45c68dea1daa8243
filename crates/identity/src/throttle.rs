//! Login throttling (ID-7): failed attempts are counted per account and per client
//! address over a sliding window. Once an account (or an address) has its limit of
//! failures inside the window, further attempts are refused until the oldest of those
//! failures leaves the window — the password is then not even checked. Kept in memory,
//! per node.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ThrottleConfig;

/// Past this many tracked keys, keys without a failure in the window are dropped.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account { tenant: String, name: String },
    Address(IpAddr),
}

#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            config,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when the account or the address is locked at `now`.
    pub fn check(
        &self,
        tenant: &str,
        name: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let failures = self.lock();
        let locked = |key: &Key, limit: usize| -> Option<Duration> {
            let times = failures.get(key)?;
            let in_window: Vec<&Instant> = times
                .iter()
                .filter(|t| now.duration_since(**t) < self.config.window)
                .collect();
            if in_window.len() < limit {
                return None;
            }
            // The lock lasts until the oldest counted failure leaves the window.
            let oldest = in_window[in_window.len() - limit];
            Some(
                self.config
                    .window
                    .saturating_sub(now.duration_since(*oldest)),
            )
        };
        let account = locked(&account_key(tenant, name), self.config.account_failures);
        let address = locked(&Key::Address(address), self.config.address_failures);
        match account.into_iter().chain(address).max() {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt against the account and the address.
    pub fn failed(&self, tenant: &str, name: &str, address: IpAddr, now: Instant) {
        let mut failures = self.lock();
        if failures.len() > SWEEP_ABOVE {
            let window = self.config.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for (key, limit) in [
            (account_key(tenant, name), self.config.account_failures),
            (Key::Address(address), self.config.address_failures),
        ] {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            // Only the newest `limit` failures can decide a lock.
            while times.len() > limit.max(1) {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn succeeded(&self, tenant: &str, name: &str) {
        self.lock().remove(&account_key(tenant, name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // The map stays consistent even if a holder panicked: every change is one step.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn account_key(tenant: &str, name: &str) -> Key {
    Key::Account {
        tenant: tenant.to_string(),
        name: name.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig::default())
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn five_failures_lock_the_account_for_the_rest_of_the_window() {
        let t = throttle();
        let start = Instant::now();
        for i in 0..5 {
            assert!(t.check("abc", "alice", A, start).is_ok(), "attempt {i}");
            t.failed("abc", "alice", A, start + Duration::from_secs(i * 60));
        }
        let at = start + Duration::from_secs(5 * 60);
        let wait = t.check("abc", "alice", A, at).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(10 * 60),
            "until the first failure is 15 min old"
        );
        // Other accounts, and the same name in another tenant, are not locked.
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
        assert!(t.check("abc", "bob", other, at).is_ok());
        assert!(t.check("xyz", "alice", other, at).is_ok());
        assert!(
            t.check("abc", "ALICE", other, at).is_err(),
            "names are case-blind"
        );
        // When the first failure leaves the window, one more attempt is allowed.
        assert!(t
            .check("abc", "alice", A, start + Duration::from_secs(15 * 60))
            .is_ok());
    }

    #[test]
    fn twenty_failures_lock_the_address_for_every_account() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..20 {
            t.failed("abc", &format!("user{i}"), A, now);
        }
        assert!(t.check("abc", "fresh", A, now).is_err());
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));
        assert!(t.check("abc", "fresh", other, now).is_ok());
    }

    #[test]
    fn a_success_clears_the_account() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..4 {
            t.failed("abc", "alice", A, now);
        }
        t.succeeded("abc", "alice");
        t.failed("abc", "alice", A, now);
        assert!(t.check("abc", "alice", A, now).is_ok());
    }
}
