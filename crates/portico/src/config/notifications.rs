//! `[notifications]`: the device notification server's timing (DC-3), validated against
//! the gateway's idle timeout.

use super::duration;
use anyhow::{bail, Result};
use serde::Deserialize;
use std::time::Duration;

/// The device notification server's timing (DC-3): a held long poll answers well before
/// any firewall or the gateway's own idle timeout gives up on the connection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNotifications {
    connect_timeout: String,
    max_connect_timeout: String,
    session_grace: String,
    websocket_ping_interval: String,
}

impl Default for RawNotifications {
    fn default() -> Self {
        RawNotifications {
            connect_timeout: "25s".into(),
            max_connect_timeout: "50s".into(),
            session_grace: "60s".into(),
            websocket_ping_interval: "30s".into(),
        }
    }
}

/// `[notifications]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// How long a `/meta/connect` is held when the client asks for nothing else.
    pub connect_timeout: Duration,
    /// The most a client's `advice.timeout` may ask for.
    pub max_connect_timeout: Duration,
    /// How long a client session outlives its last connect.
    pub session_grace: Duration,
    pub websocket_ping_interval: Duration,
}

/// A held connect must end before the gateway's idle timeout closes its connection.
pub(super) fn validate(
    raw: &RawNotifications,
    idle_timeout: Duration,
) -> Result<NotificationsConfig> {
    let positive = |key: &str, value: &str| -> Result<Duration> {
        let d = duration(key, value)?;
        if d.is_zero() {
            bail!("{key}: must be longer than 0s");
        }
        Ok(d)
    };
    let config = NotificationsConfig {
        connect_timeout: positive("notifications.connect_timeout", &raw.connect_timeout)?,
        max_connect_timeout: positive(
            "notifications.max_connect_timeout",
            &raw.max_connect_timeout,
        )?,
        session_grace: positive("notifications.session_grace", &raw.session_grace)?,
        websocket_ping_interval: positive(
            "notifications.websocket_ping_interval",
            &raw.websocket_ping_interval,
        )?,
    };
    if config.connect_timeout > config.max_connect_timeout {
        bail!(
            "notifications.connect_timeout ({:?}) is longer than notifications.max_connect_timeout ({:?})",
            config.connect_timeout,
            config.max_connect_timeout
        );
    }
    fits_idle_timeout(&config, idle_timeout)?;
    Ok(config)
}

/// Held polls and quiet notification WebSockets must end, or be pinged, before the
/// gateway's idle timeout: checked at start, and again when `SIGHUP` brings a new
/// `limits.idle_timeout` while `[notifications]` keeps its running values.
pub fn fits_idle_timeout(config: &NotificationsConfig, idle_timeout: Duration) -> Result<()> {
    if config.max_connect_timeout >= idle_timeout {
        bail!(
            "notifications.max_connect_timeout ({:?}) must be shorter than limits.idle_timeout ({:?}), \
             or the gateway closes held polls as idle",
            config.max_connect_timeout,
            idle_timeout
        );
    }
    if config.websocket_ping_interval >= idle_timeout {
        bail!(
            "notifications.websocket_ping_interval ({:?}) must be shorter than limits.idle_timeout ({:?}), \
             or the gateway closes quiet notification WebSockets as idle",
            config.websocket_ping_interval,
            idle_timeout
        );
    }
    Ok(())
}
