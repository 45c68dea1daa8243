//! The identity service's settings: every lifetime and limit, with the defaults of
//! `docs/identity.md`. Tests shorten them to seconds.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A session ends this long after login, used or not (12 h).
    pub session_absolute: Duration,
    /// A session ends after this long without use (30 min).
    pub session_inactive: Duration,
    /// How long a node trusts its in-memory copy of a session before reading the store
    /// again (5 s): the longest a logout on another node goes unnoticed here.
    pub session_cache: Duration,
    /// The last-use time of a session is written to the store at most this often (1 min).
    pub session_write_back: Duration,
    /// Access tokens (JWTs) live this long (30 min).
    pub access_token_lifetime: Duration,
    /// A refresh token chain lives this long from the grant that began it (12 h).
    pub refresh_token_lifetime: Duration,
    /// Authorization codes live this long (60 s).
    pub authorization_code_lifetime: Duration,
    /// A new signing key is made this often (24 h).
    pub key_rotation: Duration,
    /// Housekeeping runs this often (1 min): key rotation and reload, cache sweeping,
    /// last-use write-back, purging of old rows.
    pub maintenance_interval: Duration,
    /// Tolerated clock difference between nodes when checking a token's expiry (30 s).
    pub clock_skew: Duration,
    pub throttle: ThrottleConfig,
}

/// Login throttling (ID-7): failures counted per account and per client address over
/// a sliding window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub window: Duration,
    pub account_failures: usize,
    pub address_failures: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            window: Duration::from_secs(15 * 60),
            account_failures: 5,
            address_failures: 20,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            session_absolute: Duration::from_secs(12 * 3600),
            session_inactive: Duration::from_secs(30 * 60),
            session_cache: Duration::from_secs(5),
            session_write_back: Duration::from_secs(60),
            access_token_lifetime: Duration::from_secs(30 * 60),
            refresh_token_lifetime: Duration::from_secs(12 * 3600),
            authorization_code_lifetime: Duration::from_secs(60),
            key_rotation: Duration::from_secs(24 * 3600),
            maintenance_interval: Duration::from_secs(60),
            clock_skew: Duration::from_secs(30),
            throttle: ThrottleConfig::default(),
        }
    }
}
