//! Racing a connection against a watcher that is polled only when it was woken.
//!
//! A connection's task wakes several times per request, and `tokio::select!` polls every
//! branch at every wake. The watchers beside a connection (its idle clock, the shutdown
//! signals) almost never have anything to say, yet polling them each time cost about a
//! twentieth of a small request's instructions. [`race_woken`] gives the watcher a waker of
//! its own and polls it only after that waker fired.

use futures_util::future::Either;
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The watcher's waker: notes that the watcher wants a poll, and wakes the task.
struct WatcherWaker {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WatcherWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Runs `main` until it ends, or until `watcher` does. `watcher` is polled once at the
/// start and then only when it was woken; `main` at every poll.
pub fn race_woken<'a, M, W>(main: Pin<&'a mut M>, watcher: Pin<&'a mut W>) -> RaceWoken<'a, M, W>
where
    M: Future,
    W: Future,
{
    let signal = Arc::new(WatcherWaker {
        woken: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    RaceWoken {
        main,
        watcher,
        waker: Waker::from(signal.clone()),
        signal,
    }
}

/// The future of [`race_woken`].
pub struct RaceWoken<'a, M, W> {
    main: Pin<&'a mut M>,
    watcher: Pin<&'a mut W>,
    signal: Arc<WatcherWaker>,
    waker: Waker,
}

impl<M: Future, W: Future> Future for RaceWoken<'_, M, W> {
    type Output = Either<M::Output, W::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Registered before the flag is read: a wake between the two is not lost.
        this.signal.task.register(cx.waker());
        if this.signal.woken.swap(false, Ordering::AcqRel) {
            let mut watcher_cx = Context::from_waker(&this.waker);
            if let Poll::Ready(out) = this.watcher.as_mut().poll(&mut watcher_cx) {
                return Poll::Ready(Either::Right(out));
            }
        }
        this.main.as_mut().poll(cx).map(Either::Left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A future that counts its polls and never ends.
    fn counted(polls: &AtomicUsize) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |_| {
            polls.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        })
    }

    #[tokio::test]
    async fn the_watcher_is_polled_only_when_woken_and_the_main_future_every_time() {
        let watcher_polls = AtomicUsize::new(0);
        let watcher = counted(&watcher_polls);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let main = async move {
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                sum += n;
            }
            sum
        };
        tokio::pin!(main, watcher);
        let sender = tokio::spawn(async move {
            for n in 1..=5 {
                tx.send(n).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let out = race_woken(main, watcher).await;
        sender.await.unwrap();
        assert!(matches!(out, Either::Left(15)));
        assert_eq!(
            watcher_polls.load(Ordering::Relaxed),
            1,
            "polled at the start only"
        );
    }

    #[tokio::test]
    async fn a_watcher_that_is_woken_ends_the_race() {
        let main = std::future::pending::<()>();
        let watcher = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(main, watcher);
        let out = tokio::time::timeout(Duration::from_secs(10), race_woken(main, watcher))
            .await
            .expect("the watcher's timer ends the race");
        assert!(matches!(out, Either::Right(())));
    }

    #[tokio::test]
    async fn a_wake_of_the_watcher_from_another_thread_is_not_lost() {
        for _ in 0..200 {
            let notify = Arc::new(tokio::sync::Notify::new());
            let main = std::future::pending::<()>();
            let watcher = notify.notified();
            tokio::pin!(main, watcher);
            let waker_side = notify.clone();
            let thread = std::thread::spawn(move || waker_side.notify_one());
            let out = tokio::time::timeout(Duration::from_secs(10), race_woken(main, watcher))
                .await
                .expect("the notified watcher ends the race");
            assert!(matches!(out, Either::Right(())));
            thread.join().unwrap();
        }
    }
}
