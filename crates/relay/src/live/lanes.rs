//! The relay's side of lanes (`portico_tunnel::lane`): the dial lanes endpoints keep
//! ready, and taking one for a stream.
//!
//! An idle dial lane is held by a small task of its own, which reads the lane (pings, or
//! the end of it) until a stream claims it, the lane reaches `SPARE_LIFETIME`, or the
//! endpoint's tunnel on this node goes (its `cut`). A lane is only accepted from an
//! endpoint whose tunnel this node holds, so lanes never outlive their endpoint's presence:
//! revoking an endpoint ends its lanes, idle and busy, at once.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream, StreamExt};
use portico_tunnel::lane::{self, BoxLane, SPARE_LIFETIME};
use portico_tunnel::Frame;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::directory::EndpointKey;

/// The most idle dial lanes one endpoint may keep on a node; the oldest goes beyond it.
pub const MAX_IDLE_LANES: usize = 64;
/// The most lanes, idle or busy, one endpoint may hold on a node; more are refused before
/// the upgrade (`429`). Every lane is a connection of the gateway's `max_connections`: this
/// keeps one endpoint, or a stolen token, from taking them all. (An agent keeps at most 32
/// spares of each use, and each busy stream holds one more.)
pub const MAX_LANES_PER_ENDPOINT: usize = 96;

/// A lane's place among its endpoint's [`MAX_LANES_PER_ENDPOINT`], given back when dropped.
pub struct LanePermit {
    held: Arc<AtomicUsize>,
}

impl LanePermit {
    /// A place in `held`, if there is one left.
    pub fn take(held: &Arc<AtomicUsize>) -> Option<LanePermit> {
        held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_LANES_PER_ENDPOINT).then_some(n + 1)
        })
        .ok()?;
        Some(LanePermit { held: held.clone() })
    }

    /// The lane, holding this permit for as long as it lives.
    pub fn hold(self, lane: BoxLane) -> BoxLane {
        Box::pin(Permitted {
            lane,
            _permit: self,
        })
    }
}

impl Drop for LanePermit {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A lane with its permit: the permit goes when the lane does, whoever holds it then.
struct Permitted {
    lane: BoxLane,
    _permit: LanePermit,
}

impl Stream for Permitted {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lane.as_mut().poll_next(cx)
    }
}

impl Sink<Bytes> for Permitted {
    type Error = io::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lane.as_mut().poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> io::Result<()> {
        self.lane.as_mut().start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lane.as_mut().poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lane.as_mut().poll_close(cx)
    }
}

/// Asks an idle lane's task for its lane.
type Claim = mpsc::Sender<oneshot::Sender<BoxLane>>;

/// The idle dial lanes of every endpoint on this node, newest last.
#[derive(Default)]
pub struct Lanes {
    idle: Mutex<HashMap<EndpointKey, Vec<Claim>>>,
    /// Per endpoint with streams waiting to move to one of its dial lanes: told when one
    /// is parked. Only that endpoint's waiters wake.
    parked: Mutex<HashMap<EndpointKey, Arc<Notify>>>,
}

impl Lanes {
    fn idle(&self) -> MutexGuard<'_, HashMap<EndpointKey, Vec<Claim>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn parked(&self) -> MutexGuard<'_, HashMap<EndpointKey, Arc<Notify>>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `lane` ready for a stream the endpoint will be asked to dial.
    pub fn park(&self, key: EndpointKey, lane: BoxLane, cut: CancellationToken) {
        let (claim, claims) = mpsc::channel(1);
        let waiters = self.parked().get(&key).cloned();
        {
            let mut idle = self.idle();
            let lanes = idle.entry(key).or_default();
            lanes.retain(|c| !c.is_closed());
            if lanes.len() >= MAX_IDLE_LANES {
                // Dropping its sender ends the oldest lane's task.
                lanes.remove(0);
            }
            lanes.push(claim);
        }
        tokio::spawn(hold(lane, claims, cut));
        if let Some(waiters) = waiters {
            waiters.notify_waiters();
        }
    }

    /// One of the endpoint's idle dial lanes, waiting until one is parked if it has none
    /// here now.
    pub async fn claim_when_parked(&self, key: &EndpointKey) -> BoxLane {
        let waiters = self.parked().entry(key.clone()).or_default().clone();
        loop {
            let parked = waiters.notified();
            tokio::pin!(parked);
            parked.as_mut().enable();
            if let Some(lane) = self.claim(key).await {
                return lane;
            }
            parked.await;
        }
    }

    /// One of the endpoint's idle dial lanes, the newest, if it has any here.
    pub async fn claim(&self, key: &EndpointKey) -> Option<BoxLane> {
        loop {
            let claim = {
                let mut idle = self.idle();
                let lanes = idle.get_mut(key)?;
                let claim = lanes.pop();
                if lanes.is_empty() {
                    idle.remove(key);
                }
                claim?
            };
            let (reply, lane) = oneshot::channel();
            if claim.try_send(reply).is_err() {
                continue; // that lane has ended
            }
            if let Ok(lane) = lane.await {
                return Some(lane);
            }
        }
    }

    /// Forgets the endpoint's idle lanes (its tunnel here has gone; their tasks end with it).
    pub fn forget(&self, key: &EndpointKey) {
        self.idle().remove(key);
        self.parked().remove(key);
    }

    /// How many idle dial lanes the endpoint has here.
    pub fn idle_count(&self, key: &EndpointKey) -> usize {
        self.idle()
            .get(key)
            .map_or(0, |lanes| lanes.iter().filter(|c| !c.is_closed()).count())
    }
}

/// Holds an idle lane until it is claimed or ends.
async fn hold(
    mut lane: BoxLane,
    mut claims: mpsc::Receiver<oneshot::Sender<BoxLane>>,
    cut: CancellationToken,
) {
    let expired = tokio::time::sleep(SPARE_LIFETIME);
    tokio::pin!(expired);
    loop {
        tokio::select! {
            claim = claims.recv() => {
                if let Some(reply) = claim {
                    let _ = reply.send(lane);
                }
                return;
            }
            message = lane.next() => match message.map(|m| m.map(lane::decode)) {
                Some(Ok(Ok(Frame::Ping { .. }))) => {}
                // Anything else before an Open is the end of it (closed, or broken).
                other => {
                    tracing::debug!(?other, "idle dial lane ended");
                    return;
                }
            },
            () = &mut expired => return,
            () = cut.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use portico_tunnel::lane::memory_pair;

    /// A stream waiting for an endpoint's dial lane takes the next one that endpoint parks,
    /// not another endpoint's.
    #[tokio::test]
    async fn a_waiting_stream_takes_its_own_endpoints_next_dial_lane() {
        let lanes = Arc::new(Lanes::default());
        let (press, other) = (
            EndpointKey::new("abc", "press"),
            EndpointKey::new("abc", "mill"),
        );
        let waiting = tokio::spawn({
            let (lanes, press) = (lanes.clone(), press.clone());
            async move { lanes.claim_when_parked(&press).await }
        });
        tokio::task::yield_now().await;
        let (_kept, lane) = memory_pair();
        lanes.park(other.clone(), lane, CancellationToken::new());
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "another endpoint's lane is not taken"
        );
        assert_eq!(lanes.idle_count(&other), 1);
        let (_kept, lane) = memory_pair();
        lanes.park(press.clone(), lane, CancellationToken::new());
        let taken = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
        assert!(taken.unwrap().is_ok(), "its own endpoint's lane is");
        assert_eq!(lanes.idle_count(&press), 0);
        assert!(lanes.claim(&press).now_or_never().flatten().is_none());
    }
}
