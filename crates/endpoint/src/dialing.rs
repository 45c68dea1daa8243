//! The dialling side: streams the relay opens with a `host:port` target are dialled only
//! when a live permit names them and the configuration's `allow` list (if any) matches too
//! (RS-7, defence in depth). Anything else is refused with `ResetReason::Refused` before
//! any TCP connection is attempted, and logged.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portico_tunnel::lane::BoxLane;
use portico_tunnel::tunnel::{Incoming, IncomingStream};
use portico_tunnel::ResetReason;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::allow::AllowList;
use crate::lanes::LanePool;
use crate::permits::Permits;

/// How long dialling a target may take before the stream is reset with `Timeout`.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Splits `host:port`, the host possibly an IPv6 address in brackets.
pub fn split_target(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

/// Why a stream is refused, for the log.
pub(crate) fn check(
    target: &str,
    permits: &Mutex<Permits>,
    allow: Option<&AllowList>,
) -> Result<CancellationToken, &'static str> {
    let Some((host, port)) = split_target(target) else {
        return Err("the target is not host:port");
    };
    let permit = permits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .allows(target, Instant::now());
    let Some(closed) = permit else {
        return Err("no live permit names it");
    };
    if let Some(allow) = allow {
        if !allow.allows(host, port) {
            return Err("the configuration's allow list does not match it");
        }
    }
    Ok(closed)
}

/// Serves the streams the relay opens until the tunnel ends.
pub async fn serve_incoming(
    mut incoming: Incoming,
    permits: Arc<Mutex<Permits>>,
    allow: Option<AllowList>,
    lanes: Arc<LanePool>,
) {
    while let Some(stream) = incoming.next().await {
        let target = stream.target().to_string();
        match check(&target, &permits, allow.as_ref()) {
            Ok(closed) => {
                // It came on the tunnel: the relay had no dial lane of ours at hand.
                lanes.dial_missed();
                // The relay may move the stream to one of this agent's dial lanes: its
                // place is kept before the target is dialled.
                let (lane, place) = lanes.expect_move(stream.id());
                tokio::spawn(async move {
                    dial(stream, target, closed, lane).await;
                    drop(place);
                });
            }
            Err(why) => {
                tracing::warn!(target = %target, reason = why, "refused a stream from the relay");
                stream.refuse(ResetReason::Refused);
            }
        }
    }
}

/// Dials `target` (checked already), or the reason to reset the stream with.
pub(crate) async fn connect(target: &str) -> Result<TcpStream, ResetReason> {
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            tracing::info!(%target, "dialled");
            Ok(tcp)
        }
        Ok(Err(error)) => {
            tracing::warn!(%target, %error, "cannot reach the target");
            Err(ResetReason::Unreachable)
        }
        Err(_) => {
            tracing::warn!(%target, "the target did not answer in time");
            Err(ResetReason::Timeout)
        }
    }
}

async fn dial(
    stream: IncomingStream,
    target: String,
    closed: CancellationToken,
    lane: impl Future<Output = BoxLane>,
) {
    let mut tcp = match connect(&target).await {
        Ok(tcp) => tcp,
        Err(reason) => {
            stream.refuse(reason);
            return;
        }
    };
    let stream = stream.accept();
    let carried = portico_tunnel::carry::join_tcp_moving(
        &mut tcp,
        &stream,
        lane,
        Some(portico_tunnel::lane::LANE_KEEP_ALIVE),
    );
    tokio::select! {
        _ = closed.cancelled() => {}
        result = carried => {
            if let Err(error) = result {
                tracing::debug!(%target, %error, "dialled connection ended");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(split_target("plc-7:502"), Some(("plc-7", 502)));
        assert_eq!(split_target("[fd00::7]:22"), Some(("fd00::7", 22)));
        for bad in [
            "plc",
            "plc:",
            ":22",
            "plc:0",
            "plc:99999",
            "fd00::7:22",
            "[fd00::7:22",
        ] {
            assert_eq!(split_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_allow_list_applies_on_top_of_the_permit() {
        let permits = Mutex::new(Permits::default());
        permits.lock().unwrap().grant(
            "s",
            &["plc:502".to_string(), "hmi:80".to_string()],
            Duration::from_secs(60),
            Instant::now(),
        );
        let allow = AllowList::parse(&["plc:*"]).unwrap();
        assert!(check("plc:502", &permits, Some(&allow)).is_ok());
        assert!(check("hmi:80", &permits, None).is_ok());
        assert!(check("hmi:80", &permits, Some(&allow)).is_err());
        assert!(check("plc:503", &permits, Some(&allow)).is_err());
        assert!(check("session:1/listener:0", &permits, None).is_err());
    }
}
