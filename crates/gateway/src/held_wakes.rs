//! Holding back the wake-ups a task sends itself while it polls a backend connection.
//!
//! A request's task drives its backend connection itself ([`crate::backend_pool`]): it
//! polls the connection, then the response or the body that the connection fills. The
//! connection hands over what it read through the HTTP library's channels, and each hand-
//! over wakes the waker the reading side registered. That waker is the task's own, and the
//! task is running: the wake-up only makes the runtime poll the whole connection task
//! once more, after this poll, to find nothing new: one task poll in three of a small
//! request's. Holding them back saved about 1,200 instructions per small request
//! (`bench/instructions`, docs/benchmarks.md).
//!
//! [`HeldWakes::poll`] runs a poll of the connection and what it fills with a waker of its
//! own. A wake-up that arrives while that poll runs is held: when the poll ends ready, the
//! caller takes what it got and polls again when it needs more, which drives the connection
//! first; when it ends pending, the held wake-up means something it polled has more to do,
//! and it runs again at once. A wake-up at any other time (the sockets' readiness, a timer)
//! goes to the task as usual.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A poll is running.
const POLLING: u8 = 1;
/// A wake-up arrived while it ran.
const HELD: u8 = 2;

/// How many times a poll that ends pending with a wake-up held runs again at once, before
/// the task is woken to run it later, behind the runtime's other tasks.
const ROUNDS: usize = 4;

struct Shared {
    state: AtomicU8,
    /// The task that polls, registered at the start of each poll.
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Marked held before the poll's end is looked at: a poll that ends after this
        // sees the mark, one that ended before does not hold it back.
        if self.state.fetch_or(HELD, Ordering::AcqRel) & POLLING == 0 {
            self.task.wake();
        }
    }
}

/// The waker of one backend connection's polls; the connection keeps it across requests.
pub(crate) struct HeldWakes {
    shared: Arc<Shared>,
    waker: Waker,
}

impl HeldWakes {
    pub(crate) fn new() -> HeldWakes {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(0),
            task: AtomicWaker::new(),
        });
        HeldWakes {
            waker: Waker::from(shared.clone()),
            shared,
        }
    }

    /// Runs `poll` with this waker, for the task of `cx`; see the module's comment.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.shared.task.register(cx.waker());
        let mut own = Context::from_waker(&self.waker);
        for _ in 0..ROUNDS {
            self.shared.state.store(POLLING, Ordering::Release);
            let result = poll(&mut own);
            let held = self.shared.state.swap(0, Ordering::AcqRel) & HELD != 0;
            if result.is_ready() || !held {
                return result;
            }
        }
        // Still busy: its next run waits for the other tasks' turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A waker that counts its wake-ups.
    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn task() -> (Arc<Counted>, Waker) {
        let counted = Arc::new(Counted(AtomicUsize::new(0)));
        (counted.clone(), Waker::from(counted))
    }

    fn wakes(counted: &Counted) -> usize {
        counted.0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_wake_during_a_ready_poll_is_held_and_one_after_it_reaches_the_task() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let held = HeldWakes::new();
        let mut stored = None;
        let out = held.poll(&mut cx, |own| {
            own.waker().wake_by_ref();
            stored = Some(own.waker().clone());
            Poll::Ready(7)
        });
        assert_eq!(out, Poll::Ready(7));
        assert_eq!(wakes(&counted), 0, "held during the poll");
        stored.unwrap().wake();
        assert_eq!(wakes(&counted), 1, "a wake after the poll reaches the task");
    }

    #[test]
    fn a_pending_poll_with_a_held_wake_runs_again_at_once() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let held = HeldWakes::new();
        let mut runs = 0;
        let out = held.poll(&mut cx, |own| {
            runs += 1;
            match runs {
                1 => {
                    own.waker().wake_by_ref();
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            }
        });
        assert_eq!((out, runs, wakes(&counted)), (Poll::Ready(()), 2, 0));
    }

    #[test]
    fn a_poll_that_stays_busy_gives_way_and_wakes_its_task() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let held = HeldWakes::new();
        let mut runs = 0;
        let out: Poll<()> = held.poll(&mut cx, |own| {
            runs += 1;
            own.waker().wake_by_ref();
            Poll::Pending
        });
        assert_eq!((out, runs, wakes(&counted)), (Poll::Pending, ROUNDS, 1));
    }

    #[test]
    fn a_pending_poll_without_wakes_leaves_the_task_asleep() {
        let (counted, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let held = HeldWakes::new();
        let out: Poll<()> = held.poll(&mut cx, |_| Poll::Pending);
        assert_eq!((out, wakes(&counted)), (Poll::Pending, 0));
    }

    #[test]
    fn wakes_from_another_thread_racing_the_poll_are_not_lost() {
        // Bounded: 500 rounds, each a poll and one wake from a thread of its own.
        for _ in 0..500 {
            let (counted, waker) = task();
            let mut cx = Context::from_waker(&waker);
            let held = HeldWakes::new();
            let mut from_thread = None;
            let mut runs = 0;
            let out: Poll<()> = held.poll(&mut cx, |own| {
                runs += 1;
                if from_thread.is_none() {
                    let waker = own.waker().clone();
                    from_thread = Some(std::thread::spawn(move || waker.wake()));
                }
                Poll::Pending
            });
            from_thread.unwrap().join().unwrap();
            assert_eq!(out, Poll::Pending);
            // Either the poll saw the wake (and ran again, then woke the task once it
            // gave way, or ran again and saw nothing more), or the wake came after it
            // and went to the task: never neither.
            assert!(
                runs > 1 || wakes(&counted) == 1,
                "a wake was lost: {runs} runs, {} task wakes",
                wakes(&counted)
            );
        }
    }
}
