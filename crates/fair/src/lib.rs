//! Fair turns between a bulk stream and an interactive one on the same worker thread.
//!
//! The runtime lets a task run until it has made about 128 socket operations (its
//! cooperative budget), and looks for other ready sockets only between turns. A task
//! carrying a bulk stream always finds bytes ready, so each of its turns moves megabytes:
//! milliseconds during which a keystroke for another stream waits, at every process it
//! crosses on its way. (More worker threads per process shortened those waits, which is
//! how they were found: `docs/benchmarks.md`.)
//!
//! [`Fair`] bounds a turn by bytes as well. Each direction counts on its own (a connection
//! is often split between a reading task and a writing task): once [`TURN_BYTES`] have
//! moved one way since that way last had to wait for the socket, the next call that way
//! yields once, so the runtime polls its sockets and schedules what became ready.
//!
//! A yield has two steps. The first hands the task to the runtime to be woken once it has
//! polled its sockets. A multi-threaded runtime then wakes it last, into the slot its
//! worker runs next, ahead of the tasks those sockets woke; so the second step wakes the
//! task from within its own poll, which puts it at the back of the queue, behind them.
//! Without it the interactive task waited one more whole turn unless another worker took
//! it.
//!
//! Beyond turns, a stream that keeps carrying bytes moves to worker threads of its own
//! ([`bulk`]), and [`Counted`] counts a stream's bytes as they move.
#![forbid(unsafe_code)]

pub mod bulk;
mod counted;

pub use counted::Counted;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The bytes a task may move one way through one [`Fair`] (or count on one
/// [`TurnCounter`]) before it gives other tasks a turn.
///
/// Measured with `bench/tunnel` (`docs/benchmarks.md`), builds alternating: every size
/// from 64 KiB to 2 MiB took 30–60 % off an interactive stream's p50 beside a bulk one;
/// 64 KiB cost the bulk stream a sixth of its throughput, and 512 KiB (reads and writes
/// counted apart) 5–25 % of a single stream's in three of four rounds; 2 MiB cost none
/// beyond the spread; 8 MiB no longer helped the interactive stream.
pub const TURN_BYTES: usize = 2 * 1024 * 1024;

/// An IO whose reads and writes each yield to other tasks after [`TURN_BYTES`] in a turn.
#[derive(Debug)]
pub struct Fair<IO> {
    io: IO,
    reading: Turn,
    writing: Turn,
}

impl<IO> Fair<IO> {
    pub fn new(io: IO) -> Fair<IO> {
        Fair {
            io,
            reading: Turn::default(),
            writing: Turn::default(),
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
}

/// One direction's turn.
#[derive(Debug, Default)]
struct Turn {
    /// Bytes moved since this direction last waited for the socket or yielded.
    moved: usize,
    pause: Option<Pause>,
}

/// A yield under way at the end of a turn, in two steps.
#[derive(Debug)]
enum Pause {
    /// `done` was handed to the runtime, which wakes it once it has polled its sockets
    /// and run the other ready tasks.
    Deferred(Arc<PauseDone>),
    /// The task woke itself with this waker while it ran, which queues it behind the
    /// tasks already waiting (the module's docs say why).
    Requeued(Waker),
}

/// The first step ends when the runtime wakes this, not at the next poll: a caller that
/// polls only to see whether something is ready (with a waker that does nothing) must not
/// use the yield up before its task has given the thread away.
#[derive(Debug, Default)]
struct PauseDone {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for PauseDone {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Turn {
    /// Ready while the turn lasts; at its end, pending until the runtime has let other
    /// tasks run.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.moved < TURN_BYTES {
            return Poll::Ready(());
        }
        match &self.pause {
            None => {
                let done = Arc::<PauseDone>::default();
                // `yield_now` hands the waker of its first poll to the runtime, to be
                // woken after the other ready tasks ran (or at once outside a runtime).
                let waker = Waker::from(done.clone());
                let mut yielding = std::pin::pin!(tokio::task::yield_now());
                let _ = yielding.as_mut().poll(&mut Context::from_waker(&waker));
                self.pause = Some(Pause::Deferred(done.clone()));
                Self::wait_for(&done, cx)
            }
            Some(Pause::Deferred(done)) if !done.woken.load(Ordering::Acquire) => {
                Self::wait_for(done, cx)
            }
            // Polled again by the task that woke itself: it has been back in the queue.
            // (The same task, not the same waker: a runtime may hand a task a waker of
            // another kind than its clones, and `will_wake` would then never be true.)
            Some(Pause::Requeued(waker)) if waker.data() == cx.waker().data() => {
                self.pause = None;
                self.moved = 0;
                Poll::Ready(())
            }
            // Woken from the first step, or polled by another waker after the second
            // (a look that does not wait): queue the task behind the others.
            Some(_) => {
                cx.waker().wake_by_ref();
                self.pause = Some(Pause::Requeued(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    /// Pending until the runtime wakes `done`, which then wakes the task polling now.
    fn wait_for(done: &PauseDone, cx: &mut Context<'_>) -> Poll<()> {
        *done.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if done.woken.load(Ordering::Acquire) {
            // Woken between the check and the waker's hand-over: poll again at once.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Counts what an operation moved; a wait for the socket ends the turn by itself.
    fn note<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        moved: impl Fn(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        match &result {
            Poll::Ready(Ok(value)) => self.moved = self.moved.saturating_add(moved(value)),
            Poll::Pending => self.moved = 0,
            Poll::Ready(Err(_)) => {}
        }
        result
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Fair<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.reading.poll_ready(cx));
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        this.reading.note(result, |()| read)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Fair<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.writing.poll_ready(cx));
        let result = Pin::new(&mut this.io).poll_write(cx, data);
        this.writing.note(result, |&n| n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.writing.poll_ready(cx));
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.writing.note(result, |&n| n)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Turns for a loop that moves bytes itself rather than through an IO: it tells
/// [`TurnCounter::moved`] each piece's size, which yields once a turn's bytes are through.
/// Unlike [`Fair`], it cannot see the loop wait for its peer, so it counts all the bytes,
/// not those since the last wait: a slow stream yields now and then without need, which
/// costs it nothing that matters.
#[derive(Debug, Default)]
pub struct TurnCounter {
    turn: Turn,
}

impl TurnCounter {
    pub async fn moved(&mut self, bytes: usize) {
        self.turn.moved = self.turn.moved.saturating_add(bytes);
        std::future::poll_fn(|cx| self.turn.poll_ready(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Always has bytes and always takes them, without ever counting against the
    /// runtime's budget: the worst bulk peer. Its reads are never ready when `dry`.
    #[derive(Default)]
    struct Endless {
        dry: bool,
    }

    impl AsyncRead for Endless {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.dry {
                return Poll::Pending;
            }
            let n = buf.remaining();
            buf.put_slice(&vec![7; n]);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Endless {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const PIECE: usize = 64 * 1024;

    /// A task on the same thread that counts its turns.
    fn other_task() -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let turns = Arc::new(AtomicUsize::new(0));
        let counter = turns.clone();
        let task = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        (turns, task)
    }

    /// Every test runs on one thread, bounded in time: a lost wake-up fails it.
    async fn bounded(test: impl Future<Output = ()>) {
        tokio::time::timeout(Duration::from_secs(10), test)
            .await
            .expect("finished within 10 s");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_turn_ends_after_its_bytes_and_not_before() {
        bounded(async {
            let (other, task) = other_task();
            let mut io = Fair::new(Endless::default());
            let mut buf = vec![0; PIECE];
            for _ in 0..TURN_BYTES / PIECE {
                io.read_exact(&mut buf).await.unwrap();
            }
            assert_eq!(other.load(Ordering::Relaxed), 0, "ran within the turn");
            io.read_exact(&mut buf).await.unwrap();
            assert!(
                other.load(Ordering::Relaxed) >= 1,
                "did not run after the turn"
            );
            task.abort();
        })
        .await;
    }

    /// The behaviour that matters: on one thread, a task carrying bulk bytes lets another
    /// task run while it carries them. Without `Fair`, the bulk task here finishes before
    /// the other one ever runs.
    #[tokio::test(flavor = "current_thread")]
    async fn a_bulk_copy_lets_other_tasks_run_on_the_same_thread() {
        bounded(async {
            let (other, task) = other_task();
            let mut from = Fair::new(Endless::default()).take(8 * TURN_BYTES as u64);
            let mut to = Fair::new(Endless::default());
            tokio::io::copy(&mut from, &mut to).await.unwrap();
            let turns = other.load(Ordering::Relaxed);
            assert!(turns >= 8, "the other task ran {turns} times");
            task.abort();
        })
        .await;
    }

    /// A connection split between a reading and a writing task: the reader waiting for
    /// the socket must not end the writer's turn.
    #[tokio::test(flavor = "current_thread")]
    async fn a_reader_waiting_does_not_reset_the_writers_turn() {
        bounded(async {
            let (other, task) = other_task();
            let mut io = Fair::new(Endless { dry: true });
            let data = vec![1; PIECE];
            for _ in 0..4 * TURN_BYTES / PIECE {
                io.write_all(&data).await.unwrap();
                let mut byte = [0u8; 1];
                let read = std::future::poll_fn(|cx| {
                    Poll::Ready(Pin::new(&mut io).poll_read(cx, &mut ReadBuf::new(&mut byte)))
                })
                .await;
                assert!(read.is_pending());
            }
            let turns = other.load(Ordering::Relaxed);
            assert!(turns >= 3, "the other task ran {turns} times");
            task.abort();
        })
        .await;
    }

    /// A look with a waker that does nothing (as `now_or_never` takes one) at the end of a
    /// turn must leave the yield to the task's real wait.
    #[tokio::test(flavor = "current_thread")]
    async fn a_look_without_waiting_does_not_use_the_yield_up() {
        bounded(async {
            let (other, task) = other_task();
            let mut io = Fair::new(Endless::default());
            let data = vec![1; TURN_BYTES];
            io.write_all(&data).await.unwrap();
            let mut look = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut io).poll_write(&mut look, &data).is_pending());
            assert!(Pin::new(&mut io).poll_write(&mut look, &data).is_pending());
            assert_eq!(other.load(Ordering::Relaxed), 0);
            io.write_all(&data).await.unwrap();
            assert!(
                other.load(Ordering::Relaxed) >= 1,
                "the write did not yield"
            );
            task.abort();
        })
        .await;
    }

    /// How the bulk task of [`moved_before_a_signal_is_seen`] counts its turns.
    #[derive(Clone, Copy)]
    enum Counted {
        ByFair,
        ByTurnCounter,
    }

    /// On a multi-threaded runtime with one worker, the bytes a bulk task moves after it
    /// signalled another task through a real socket, early in its turn, until that task
    /// has the signal. The worker wakes a yielded task last, into the slot it runs next:
    /// unless the yield puts it back behind the tasks the sockets woke, this is two turns.
    async fn moved_before_a_signal_is_seen(counted: Counted) -> usize {
        let moved = Arc::new(AtomicUsize::new(0));
        let bulk_moved = moved.clone();
        let interactive = tokio::spawn(async move {
            let (mut signal, mut receiver) = tokio::net::UnixStream::pair().unwrap();
            // Spawned from the worker, the bulk task runs once this one waits.
            let bulk = tokio::spawn(async move {
                let mut io = Fair::new(Endless::default());
                let mut counter = TurnCounter::default();
                let mut buf = vec![0; PIECE];
                for piece in 0..8 * TURN_BYTES / PIECE {
                    match counted {
                        Counted::ByFair => {
                            io.read_exact(&mut buf).await.unwrap();
                        }
                        Counted::ByTurnCounter => counter.moved(PIECE).await,
                    }
                    bulk_moved.fetch_add(PIECE, Ordering::Relaxed);
                    if piece == 0 {
                        signal.write_all(b"k").await.unwrap();
                    }
                }
            });
            let mut byte = [0u8; 1];
            receiver.read_exact(&mut byte).await.unwrap();
            let seen = moved.load(Ordering::Relaxed);
            bulk.await.unwrap();
            seen
        });
        interactive.await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_task_woken_during_the_yield_runs_before_the_next_turn() {
        bounded(async {
            for counted in [Counted::ByFair, Counted::ByTurnCounter] {
                let seen = moved_before_a_signal_is_seen(counted).await;
                assert!(
                    seen <= TURN_BYTES,
                    "the bulk task moved {seen} bytes before the signalled task ran"
                );
            }
        })
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_counted_loop_yields_once_per_turn() {
        bounded(async {
            let (other, task) = other_task();
            let mut turn = TurnCounter::default();
            for _ in 0..TURN_BYTES / PIECE - 1 {
                turn.moved(PIECE).await;
            }
            assert_eq!(other.load(Ordering::Relaxed), 0, "ran within the turn");
            turn.moved(PIECE).await;
            assert!(
                other.load(Ordering::Relaxed) >= 1,
                "did not run after the turn"
            );
            task.abort();
        })
        .await;
    }
}
