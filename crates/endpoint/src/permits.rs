//! The dialling side's permits (RS-7): which `host:port` targets the relay may ask this
//! endpoint to dial, per connection session, until the session's `disconnect` or timeout.
//! Pure bookkeeping; the clock is passed in.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An expiry far enough away to stand for "never" where a timeout would overflow the clock
/// (the control protocol allows at most 30 days).
pub const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

struct Permit {
    targets: HashSet<String>,
    expires: Instant,
    /// Set after a reconnect until the relay announces the session again.
    unconfirmed_since: Option<Instant>,
    /// Cancelled when the permit ends: the connections dialled under it close too.
    closed: CancellationToken,
}

/// The live permits, by session id.
#[derive(Default)]
pub struct Permits {
    sessions: HashMap<String, Permit>,
}

/// `host:port` with the host in lower case, so `PLC-7:502` and `plc-7:502` are one target.
pub fn normalize_target(target: &str) -> String {
    target.trim().to_ascii_lowercase()
}

impl Permits {
    /// Grants (or renews, after a reconnect) the session's targets for `timeout`.
    pub fn grant(&mut self, session: &str, targets: &[String], timeout: Duration, now: Instant) {
        let targets = targets.iter().map(|t| normalize_target(t)).collect();
        // The control message bounds the timeout; a far future is as good as never.
        let expires = now.checked_add(timeout).unwrap_or(now + FAR_FUTURE);
        match self.sessions.get_mut(session) {
            Some(p) => {
                p.targets = targets;
                p.expires = expires;
                p.unconfirmed_since = None;
            }
            None => {
                self.sessions.insert(
                    session.to_string(),
                    Permit {
                        targets,
                        expires,
                        unconfirmed_since: None,
                        closed: CancellationToken::new(),
                    },
                );
            }
        }
    }

    /// Ends the session's permit and the connections dialled under it.
    pub fn revoke(&mut self, session: &str) -> bool {
        match self.sessions.remove(session) {
            Some(p) => {
                p.closed.cancel();
                true
            }
            None => false,
        }
    }

    /// The live permit naming `target`, as the token that closes its connections; `None`
    /// when no session that is neither ended nor past its timeout names it.
    pub fn allows(&self, target: &str, now: Instant) -> Option<CancellationToken> {
        let target = normalize_target(target);
        self.sessions
            .values()
            .find(|p| now < p.expires && p.targets.contains(&target))
            .map(|p| p.closed.child_token())
    }

    /// After a reconnect: every permit waits to be announced again.
    pub fn reconnected(&mut self, now: Instant) {
        for p in self.sessions.values_mut() {
            p.unconfirmed_since = Some(now);
        }
    }

    /// Drops permits past their timeout, and those not announced again within `grace` of a
    /// reconnect. Returns the sessions dropped.
    pub fn sweep(&mut self, now: Instant, grace: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, p)| {
                now >= p.expires || p.unconfirmed_since.is_some_and(|t| now >= t + grace)
            })
            .map(|(s, _)| s.clone())
            .collect();
        for s in &gone {
            self.revoke(s);
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn targets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_named_targets_of_live_sessions_are_allowed() {
        let t0 = Instant::now();
        let mut p = Permits::default();
        p.grant("s1", &targets(&["PLC-7:502", "10.0.0.5:22"]), S(60), t0);
        assert!(p.allows("plc-7:502", t0).is_some());
        assert!(p.allows("10.0.0.5:22", t0 + S(59)).is_some());
        assert!(p.allows("plc-7:503", t0).is_none(), "another port");
        assert!(p.allows("plc-8:502", t0).is_none(), "another host");
        assert!(
            p.allows("10.0.0.5:22", t0 + S(60)).is_none(),
            "past its timeout"
        );
        let token = p.allows("plc-7:502", t0).unwrap();
        assert!(p.revoke("s1"));
        assert!(token.is_cancelled(), "connections of the session close");
        assert!(p.allows("plc-7:502", t0).is_none(), "after disconnect");
        assert!(!p.revoke("s1"));
    }

    #[test]
    fn expiry_and_reannouncement_are_swept() {
        let t0 = Instant::now();
        let mut p = Permits::default();
        p.grant("short", &targets(&["a:1"]), S(5), t0);
        p.grant("kept", &targets(&["b:2"]), S(600), t0);
        p.grant("dropped", &targets(&["c:3"]), S(600), t0);
        assert_eq!(p.sweep(t0 + S(5), S(10)), vec!["short".to_string()]);
        p.reconnected(t0 + S(6));
        p.grant("kept", &targets(&["b:2"]), S(590), t0 + S(7));
        assert!(p.sweep(t0 + S(15), S(10)).is_empty(), "within the grace");
        assert_eq!(p.sweep(t0 + S(16), S(10)), vec!["dropped".to_string()]);
        assert_eq!(p.len(), 1);
        assert!(p.allows("b:2", t0 + S(16)).is_some());
    }
}
