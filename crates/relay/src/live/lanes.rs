//! The relay's side of lanes (`portico_tunnel::lane`): the dial lanes endpoints keep
//! ready, and taking one for a stream.
//!
//! An idle dial lane is held by a small task of its own, which reads the lane (pings, or
//! the end of it) until a stream claims it, the lane reaches `SPARE_LIFETIME`, or the
//! endpoint's tunnel on this node goes (its `cut`). A lane is only accepted from an
//! endpoint whose tunnel this node holds, so lanes never outlive their endpoint's presence:
//! revoking an endpoint ends its lanes, idle and busy, at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::StreamExt;
use portico_tunnel::lane::{self, BoxLane, SPARE_LIFETIME};
use portico_tunnel::Frame;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::directory::EndpointKey;

/// The most idle dial lanes one endpoint may keep on a node; the oldest goes beyond it.
pub const MAX_IDLE_LANES: usize = 64;

/// Asks an idle lane's task for its lane.
type Claim = mpsc::Sender<oneshot::Sender<BoxLane>>;

/// The idle dial lanes of every endpoint on this node, newest last.
#[derive(Default)]
pub struct Lanes {
    idle: Mutex<HashMap<EndpointKey, Vec<Claim>>>,
}

impl Lanes {
    fn idle(&self) -> MutexGuard<'_, HashMap<EndpointKey, Vec<Claim>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `lane` ready for a stream the endpoint will be asked to dial.
    pub fn park(&self, key: EndpointKey, lane: BoxLane, cut: CancellationToken) {
        let (claim, claims) = mpsc::channel(1);
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
