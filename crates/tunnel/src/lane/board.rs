//! Where streams that run on a tunnel wait for the lane that takes them over
//! (`crate::lane`, "moving a stream"), on the side that does not start the move: the
//! relay for the streams an agent opened, an agent for the streams the relay opened on
//! its tunnel.
//!
//! A lane that names a stream may arrive before the stream's place is kept (the two come
//! on different connections), so a lane waits a while for its place.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{oneshot, Notify};

use super::{BoxLane, MOVE_WAIT};
use crate::frame::StreamId;

/// The streams of one tunnel that may move to a lane the peer sends, by stream id.
#[derive(Default)]
pub struct MoveBoard {
    waiting: Mutex<HashMap<StreamId, (u64, oneshot::Sender<BoxLane>)>>,
    tickets: AtomicU64,
    /// A place was kept: lanes waiting for theirs look again.
    kept: Notify,
}

impl MoveBoard {
    fn waiting(&self) -> MutexGuard<'_, HashMap<StreamId, (u64, oneshot::Sender<BoxLane>)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a place for the lane that may take over tunnel stream `stream`: the returned
    /// future yields it once it came, and never if none comes. The place goes when the
    /// returned guard is dropped.
    pub fn expect(
        self: &Arc<MoveBoard>,
        stream: StreamId,
    ) -> (impl Future<Output = BoxLane> + Send + 'static, Place) {
        let (tx, rx) = oneshot::channel();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.waiting().insert(stream, (ticket, tx));
        self.kept.notify_waiters();
        let lane = async move {
            match rx.await {
                Ok(lane) => lane,
                Err(_) => std::future::pending().await,
            }
        };
        let place = Place {
            board: self.clone(),
            stream,
            ticket,
        };
        (lane, place)
    }

    /// Gives `lane`, whose first frame was `Moved` for `stream`, to that stream, once its
    /// place is kept (within [`MOVE_WAIT`]); gives it back if none is by then.
    pub async fn hand_over(&self, stream: StreamId, lane: BoxLane) -> Result<(), BoxLane> {
        let deadline = tokio::time::Instant::now() + MOVE_WAIT;
        loop {
            let kept = self.kept.notified();
            tokio::pin!(kept);
            kept.as_mut().enable();
            if let Some((_, place)) = self.waiting().remove(&stream) {
                return place.send(lane);
            }
            if tokio::time::timeout_at(deadline, kept).await.is_err() {
                return Err(lane);
            }
        }
    }
}

/// A stream's place on a [`MoveBoard`]; removed when dropped (if still its own).
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
    use crate::lane::memory_pair;
    use futures_util::FutureExt;

    #[tokio::test(start_paused = true)]
    async fn a_lane_goes_to_the_stream_that_waits_for_it_and_only_while_it_waits() {
        let board = Arc::new(MoveBoard::default());
        let (lane_for_3, place) = board.expect(3);
        let (lane, _peer) = memory_pair();
        assert!(board.hand_over(3, lane).await.is_ok());
        assert!(
            lane_for_3.now_or_never().is_some(),
            "the waiting stream got it"
        );
        drop(place);

        let (lane, _peer) = memory_pair();
        assert!(board.hand_over(5, lane).await.is_err(), "no stream 5 waits");
        let (_lane_for_5, place) = board.expect(5);
        drop(place);
        let (lane, _peer) = memory_pair();
        assert!(
            board.hand_over(5, lane).await.is_err(),
            "its place went with it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_that_comes_before_its_streams_place_waits_for_it() {
        let board = Arc::new(MoveBoard::default());
        let (lane, _peer) = memory_pair();
        let early = tokio::spawn({
            let board = board.clone();
            async move { board.hand_over(9, lane).await.is_ok() }
        });
        tokio::time::sleep(MOVE_WAIT / 2).await;
        let (lane_for_9, _place) = board.expect(9);
        assert!(early.await.unwrap(), "the lane found its place");
        assert!(lane_for_9.now_or_never().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_streams_place_does_not_take_a_later_streams_place_with_it() {
        let board = Arc::new(MoveBoard::default());
        let (_old, old_place) = board.expect(7);
        let (new, _new_place) = board.expect(7);
        drop(old_place);
        let (lane, _peer) = memory_pair();
        assert!(board.hand_over(7, lane).await.is_ok());
        assert!(new.now_or_never().is_some());
    }
}
