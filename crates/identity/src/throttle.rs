//! Login throttling (ID-7): failed attempts are counted per account and per client
//! address over a sliding window. Once an account (or an address) has its limit of
//! failures inside the window, further attempts are refused until the oldest of those
//! failures leaves the window — the password is then not even checked. Kept in memory,
//! per node.
//!
//! Attempts in progress count too: [`LoginThrottle::reserve`] checks and takes a place in
//! one step, so that a burst of parallel attempts cannot all pass the check before the
//! first of them has failed. IPv6 clients are counted per /64, the block a single
//! subscriber usually gets.

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

#[derive(Debug, Default)]
struct State {
    failures: HashMap<Key, VecDeque<Instant>>,
    /// Attempts reserved and not yet decided, per key.
    pending: HashMap<Key, usize>,
}

#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    state: Mutex<State>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            config,
            state: Mutex::new(State::default()),
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
        self.locked(&self.lock(), tenant, name, address, now)
    }

    /// Like [`LoginThrottle::check`], and when allowed, counts the attempt as in progress
    /// until the returned reservation is decided (or dropped, e.g. when the client went
    /// away mid-login: then it counts as nothing).
    pub fn reserve(
        &self,
        tenant: &str,
        name: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<Reservation<'_>, Duration> {
        let mut state = self.lock();
        self.locked(&state, tenant, name, address, now)?;
        for key in [account_key(tenant, name), address_key(address)] {
            *state.pending.entry(key).or_default() += 1;
        }
        Ok(Reservation {
            throttle: self,
            tenant: tenant.to_string(),
            name: name.to_string(),
            address,
            decided: false,
        })
    }

    fn locked(
        &self,
        state: &State,
        tenant: &str,
        name: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let locked = |key: &Key, limit: usize| -> Option<Duration> {
            let pending = state.pending.get(key).copied().unwrap_or(0);
            let times = state.failures.get(key);
            let in_window: Vec<&Instant> = times
                .into_iter()
                .flatten()
                .filter(|t| now.duration_since(**t) < self.config.window)
                .collect();
            if in_window.len() + pending < limit.max(1) {
                return None;
            }
            // The lock lasts until the oldest counted failure leaves the window; while
            // only attempts in progress fill the limit, until they are decided.
            let oldest = in_window
                .len()
                .checked_sub(limit.saturating_sub(pending).max(1));
            Some(match oldest.and_then(|i| in_window.get(i)) {
                Some(oldest) => self
                    .config
                    .window
                    .saturating_sub(now.duration_since(**oldest)),
                None => Duration::from_secs(1),
            })
        };
        let account = locked(&account_key(tenant, name), self.config.account_failures);
        let address = locked(&address_key(address), self.config.address_failures);
        match account.into_iter().chain(address).max() {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt against the account and the address.
    pub fn failed(&self, tenant: &str, name: &str, address: IpAddr, now: Instant) {
        let mut state = self.lock();
        state.settle(&account_key(tenant, name));
        state.settle(&address_key(address));
        let failures = &mut state.failures;
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
            (address_key(address), self.config.address_failures),
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
    fn succeeded(&self, tenant: &str, name: &str, address: IpAddr) {
        let mut state = self.lock();
        let account = account_key(tenant, name);
        state.settle(&account);
        state.settle(&address_key(address));
        state.failures.remove(&account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The maps stay consistent even if a holder panicked: every change is one step.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A login attempt in progress (see [`LoginThrottle::reserve`]).
pub struct Reservation<'a> {
    throttle: &'a LoginThrottle,
    tenant: String,
    name: String,
    address: IpAddr,
    decided: bool,
}

impl Reservation<'_> {
    /// The password was wrong (or the user unknown).
    pub fn failed(mut self, now: Instant) {
        self.decided = true;
        self.throttle
            .failed(&self.tenant, &self.name, self.address, now);
    }

    /// The login succeeded.
    pub fn succeeded(mut self) {
        self.decided = true;
        self.throttle
            .succeeded(&self.tenant, &self.name, self.address);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.decided {
            let mut state = self.throttle.lock();
            state.settle(&account_key(&self.tenant, &self.name));
            state.settle(&address_key(self.address));
        }
    }
}

impl State {
    /// One reserved attempt for `key` is decided.
    fn settle(&mut self, key: &Key) {
        if let Some(n) = self.pending.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending.remove(key);
            }
        }
    }
}

/// The address as counted: IPv4 as is (also when mapped into IPv6), IPv6 by its /64.
fn address_key(address: IpAddr) -> Key {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::Address(IpAddr::V4(v4)),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Key::Address(IpAddr::V6(prefix.into()))
            }
        },
        v4 => Key::Address(v4),
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
        t.succeeded("abc", "alice", A);
        t.failed("abc", "alice", A, now);
        assert!(t.check("abc", "alice", A, now).is_ok());
    }

    #[test]
    fn parallel_attempts_count_before_they_fail() {
        let t = throttle();
        let now = Instant::now();
        // Five attempts in flight at once fill the account's limit: the sixth waits.
        let held: Vec<_> = (0..5)
            .map(|_| t.reserve("abc", "alice", A, now).unwrap())
            .collect();
        assert!(t.reserve("abc", "alice", A, now).is_err());
        // Attempts that end without a verdict (the client left) count for nothing.
        drop(held);
        let attempt = t.reserve("abc", "alice", A, now).unwrap();
        attempt.succeeded();
        assert!(t.check("abc", "alice", A, now).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_bit_prefix() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..20u16 {
            let address: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            t.failed("abc", &format!("user{i}"), address, now);
        }
        let sibling: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.check("abc", "someone", sibling, now).is_err());
        assert!(t.check("abc", "someone", elsewhere, now).is_ok());
    }
}
