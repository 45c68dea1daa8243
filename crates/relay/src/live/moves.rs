//! Moving a joined stream's side from an endpoint's tunnel to a lane of the endpoint's
//! (docs/tunnel.md, "Moving a stream to a lane").
//!
//! A stream that found no lane at its start runs on the tunnel, where it shares one
//! connection with every other stream. Once a lane is at hand, the side that opened the
//! stream moves it: the agent for a stream it opened (on one of its spare open lanes), the
//! relay for a stream it opened on a dialler's tunnel (on one of the dialler's idle dial
//! lanes). The lane's first frame is `Moved` naming the tunnel stream; each side then ends
//! its direction on the tunnel with a `Moved` and writes the rest on the lane, and reads
//! the tunnel up to the peer's `Moved`, then the lane. Nothing is decided again: the stream
//! was joined under RS-7 at its open, and the lane belongs to the same endpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use portico_tunnel::lane::BoxLane;
use portico_tunnel::StreamId;
use tokio::sync::oneshot;

/// A lane that takes a stream's side over, once it comes (its `Moved` already sent or
/// read). A side that never moves never gets one.
pub type Mover = BoxFuture<'static, BoxLane>;

/// A mover that never yields a lane: the side stays where it is.
pub fn never() -> Mover {
    Box::pin(std::future::pending())
}

/// The streams an endpoint opened on one tunnel that are joined here and may move to an
/// open lane of the endpoint's, by stream id. One per tunnel of an endpoint whose agent
/// moves streams.
#[derive(Default)]
pub struct MoveBoard {
    waiting: Mutex<HashMap<StreamId, (u64, oneshot::Sender<BoxLane>)>>,
    tickets: AtomicU64,
}

impl MoveBoard {
    fn waiting(&self) -> MutexGuard<'_, HashMap<StreamId, (u64, oneshot::Sender<BoxLane>)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a place for the lane that may take over tunnel stream `stream`: the mover
    /// yields it. The place goes when the returned guard is dropped.
    pub fn expect(self: &Arc<MoveBoard>, stream: StreamId) -> (Mover, Place) {
        let (tx, rx) = oneshot::channel();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.waiting().insert(stream, (ticket, tx));
        let mover: Mover = Box::pin(async move {
            match rx.await {
                Ok(lane) => lane,
                Err(_) => std::future::pending().await,
            }
        });
        let place = Place {
            board: self.clone(),
            stream,
            ticket,
        };
        (mover, place)
    }

    /// Gives `lane`, whose first frame was `Moved` for `stream`, to that stream's join;
    /// gives it back when no joined stream of that id waits for one.
    pub fn hand_over(&self, stream: StreamId, lane: BoxLane) -> Result<(), BoxLane> {
        match self.waiting().remove(&stream) {
            Some((_, place)) => place.send(lane),
            None => Err(lane),
        }
    }
}

/// A joined stream's place on a [`MoveBoard`]; removed when dropped (if still its own).
pub struct Place {
    board: Arc<MoveBoard>,
    stream: StreamId,
    ticket: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut waiting = self.board.waiting();
        if waiting
            .get(&self.stream)
            .is_some_and(|(ticket, _)| *ticket == self.ticket)
        {
            waiting.remove(&self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_lane_goes_to_the_stream_that_waits_for_it_and_only_while_it_waits() {
        let board = Arc::new(MoveBoard::default());
        let (mover, place) = board.expect(3);
        let (lane, _peer) = portico_tunnel::lane::memory_pair();
        assert!(board.hand_over(3, lane).is_ok());
        assert!(mover.now_or_never().is_some(), "the waiting stream got it");
        drop(place);

        let (lane, _peer) = portico_tunnel::lane::memory_pair();
        assert!(board.hand_over(5, lane).is_err(), "no stream 5 waits");
        let (_mover, place) = board.expect(5);
        drop(place);
        let (lane, _peer) = portico_tunnel::lane::memory_pair();
        assert!(board.hand_over(5, lane).is_err(), "its place went with it");
    }

    #[tokio::test]
    async fn an_ended_streams_place_does_not_take_a_later_streams_place_with_it() {
        let board = Arc::new(MoveBoard::default());
        let (_old, old_place) = board.expect(7);
        let (new, _new_place) = board.expect(7);
        drop(old_place);
        let (lane, _peer) = portico_tunnel::lane::memory_pair();
        assert!(board.hand_over(7, lane).is_ok());
        assert!(new.now_or_never().is_some());
    }
}
