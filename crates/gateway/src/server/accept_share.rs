//! Sharing accepted connections between cores (`Gateway::serve_on_core`). Every core
//! listens on the same socket and is woken by the same new connection; whichever accepts
//! first serves it for its whole life. Left to chance, a burst of connections can land
//! mostly on one core, which then runs at its limit while the other idles. So a core that
//! holds clearly more connections than the least loaded one waits a moment before
//! accepting, and the others take the connection first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// More connections than the least loaded core that a core may hold and still accept
/// at once.
const SLACK: usize = 1;
/// How long a core waits for the others each time, and how many times: a busy other core
/// delays a connection by at most 5 ms.
const PAUSE: Duration = Duration::from_millis(1);
const PAUSES: usize = 5;

/// The open connections of each core.
pub struct AcceptShare {
    open: Box<[AtomicUsize]>,
}

impl AcceptShare {
    pub fn new(cores: usize) -> Arc<AcceptShare> {
        Arc::new(AcceptShare {
            open: (0..cores.max(1)).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    fn least(&self) -> usize {
        self.open
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Resolves when `core` may accept: at once unless it holds more than `SLACK`
    /// connections above the least loaded core.
    pub async fn my_turn(&self, core: usize) {
        for _ in 0..PAUSES {
            if self.open[core].load(Ordering::Relaxed) <= self.least() + SLACK {
                return;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }

    /// Counts a connection `core` accepted, until the returned guard is dropped.
    pub fn opened(self: &Arc<Self>, core: usize) -> Opened {
        self.open[core].fetch_add(1, Ordering::Relaxed);
        Opened {
            share: self.clone(),
            core,
        }
    }
}

/// One open connection of a core.
pub struct Opened {
    share: Arc<AcceptShare>,
    core: usize,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.share.open[self.core].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_core_ahead_of_the_others_waits_its_turn_a_bounded_time() {
        let share = AcceptShare::new(2);
        let first: Vec<_> = (0..2).map(|_| share.opened(0)).collect();
        // Two ahead of core 1: core 0 waits, core 1 does not.
        let started = tokio::time::Instant::now();
        share.my_turn(1).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        share.my_turn(0).await;
        assert_eq!(started.elapsed(), PAUSE * PAUSES as u32);
        // One ahead is within the slack; closed connections count no more.
        let _second = share.opened(1);
        let started = tokio::time::Instant::now();
        share.my_turn(0).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(first);
        assert_eq!(share.least(), 0);
    }
}
