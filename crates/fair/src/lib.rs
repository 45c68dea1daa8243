//! Fair turns between a bulk stream and an interactive one on the same worker thread.
//!
//! The runtime lets a task run until it has made about 128 socket operations (its
//! cooperative budget), and looks for other ready sockets only between turns. A task
//! carrying a bulk stream always finds bytes ready, so each of its turns moves megabytes:
//! milliseconds during which a keystroke for another stream waits, at every process it
//! crosses on its way. (More worker threads per process shortened those waits, which is
//! how they were found: `docs/benchmarks.md`.)
//!
//! [`Fair`] bounds a turn by bytes as well: once [`TURN_BYTES`] have moved through it
//! since its task last waited, it yields once, so the runtime polls its sockets and runs
//! what became ready before the bulk task goes on.
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The bytes a task may move through one [`Fair`] before it gives other tasks a turn.
///
/// Measured with `bench/tunnel` (`docs/benchmarks.md`): 64 KiB cut an interactive
/// stream's latency beside a bulk one most, but cost the bulk stream a sixth of its
/// throughput; 512 KiB kept bulk throughput and still nearly halved that latency; 2 MiB
/// gained little.
pub const TURN_BYTES: usize = 512 * 1024;

/// An IO whose reads and writes yield to other tasks after [`TURN_BYTES`] in one turn.
pub struct Fair<IO> {
    io: IO,
    /// Bytes moved since the task last waited for this IO or yielded.
    moved: usize,
    /// The yield under way at the end of a turn.
    pause: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<IO> Fair<IO> {
    pub fn new(io: IO) -> Fair<IO> {
        Fair {
            io,
            moved: 0,
            pause: None,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// Ready while the turn lasts; at its end, pending once, for one yield.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.moved < TURN_BYTES {
            return Poll::Ready(());
        }
        let pause = self
            .pause
            .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
        ready!(pause.as_mut().poll(cx));
        self.pause = None;
        self.moved = 0;
        Poll::Ready(())
    }

    /// Counts what an operation moved; a wait ends the turn by itself.
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
        ready!(this.poll_turn(cx));
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        this.note(result, |()| read)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Fair<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_turn(cx));
        let result = Pin::new(&mut this.io).poll_write(cx, data);
        this.note(result, |&n| n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_turn(cx));
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note(result, |&n| n)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Waker;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Always has bytes and always takes them, without ever counting against the
    /// runtime's budget: the worst bulk peer.
    struct Endless;

    impl AsyncRead for Endless {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
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

    /// Polls reads of `piece` bytes until `total` bytes are in; returns how often a read
    /// was not ready.
    fn pauses_while_reading(total: usize, piece: usize) -> usize {
        let mut io = Fair::new(Endless);
        let mut cx = Context::from_waker(Waker::noop());
        let mut space = vec![0; piece];
        let (mut read, mut pauses) = (0, 0);
        while read < total {
            let mut buf = ReadBuf::new(&mut space);
            match Pin::new(&mut io).poll_read(&mut cx, &mut buf) {
                Poll::Ready(result) => {
                    result.unwrap();
                    read += buf.filled().len();
                }
                Poll::Pending => pauses += 1,
            }
        }
        pauses
    }

    #[test]
    fn a_turn_ends_after_its_bytes_and_not_before() {
        let piece = 64 * 1024;
        assert_eq!(pauses_while_reading(TURN_BYTES, piece), 0);
        assert_eq!(pauses_while_reading(TURN_BYTES + piece, piece), 1);
        assert_eq!(pauses_while_reading(4 * TURN_BYTES + piece, piece), 4);
    }

    #[test]
    fn writes_count_toward_the_turn() {
        let mut io = Fair::new(Endless);
        let mut cx = Context::from_waker(Waker::noop());
        let data = vec![1; TURN_BYTES];
        let first = Pin::new(&mut io).poll_write(&mut cx, &data);
        assert!(matches!(first, Poll::Ready(Ok(n)) if n == TURN_BYTES));
        assert!(Pin::new(&mut io).poll_write(&mut cx, &data).is_pending());
        assert!(Pin::new(&mut io).poll_write(&mut cx, &data).is_ready());
    }

    /// The behaviour that matters: on one thread, a task carrying bulk bytes lets another
    /// task run while it carries them. Without `Fair`, the bulk task here would finish
    /// before the other one ever ran.
    #[tokio::test(flavor = "current_thread")]
    async fn a_bulk_copy_lets_other_tasks_run_on_the_same_thread() {
        let turns_of_other = Arc::new(AtomicUsize::new(0));
        let counter = turns_of_other.clone();
        let other = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let total = 8 * TURN_BYTES;
        let mut from = Fair::new(Endless).take(total as u64);
        let mut to = Fair::new(Endless);
        let mut seen_during_copy = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n]).await.unwrap();
            seen_during_copy.push(turns_of_other.load(Ordering::Relaxed));
        }
        other.abort();
        // The reader and the writer each pause after every turn's bytes.
        let other_ran = *seen_during_copy.last().unwrap();
        assert!(other_ran >= 8, "the other task ran {other_ran} times");
    }
}
