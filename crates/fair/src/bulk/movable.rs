//! TCP connections that follow their stream to the bulk runtime.
//!
//! A tokio socket is registered with the I/O driver of the runtime it was opened on, and
//! that driver wakes whichever task waits on it. After a stream moved to the bulk runtime,
//! every readiness event of its sockets still went through the main runtime: one of its
//! worker threads woke to wake the bulk task, once per event, at the cost of a bulk
//! stream's throughput and of the idle main threads that interactive streams need.
//!
//! A [`MovableTcp`] moves its registration instead. At its first read or write on a bulk
//! worker thread, it takes the socket off the driver it was registered with and registers
//! it with the bulk runtime's. That happens inside the moved task's poll, whatever layers
//! (TLS, WebSocket) lie between the task and the socket, so the callers need not know.
//!
//! The move is one way and once. Taking the socket off a driver drops the wakers
//! registered there without waking them, so a task still waiting on the old registration
//! (the other half of a split connection, read in a task of its own) would never be woken.
//! So the connection remembers the last task that waited to read and the last that waited
//! to write, and wakes both once it has moved: each polls again, and waits on the new
//! registration from then on.
//!
//! The connections also tell the bulk threads when to give way ([`super::give_way`]): one
//! not moved that reads or writes a small piece marks interactive work, one moved counts
//! its bytes.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::give_way;

thread_local! {
    /// Set on the bulk runtime's threads (its workers, and its blocking pool's, which
    /// never poll connections) when they start.
    static ON_BULK_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the bulk runtime's.
pub(super) fn mark_bulk_thread() {
    ON_BULK_THREAD.with(|on| on.set(true));
}

#[inline]
fn on_bulk_thread() -> bool {
    ON_BULK_THREAD.with(Cell::get)
}

/// A TCP connection whose registration moves to the bulk runtime with the task that polls
/// it (see the module's documentation).
#[derive(Debug)]
pub struct MovableTcp {
    /// `None` only after a move failed, which leaves the connection closed.
    tcp: Option<TcpStream>,
    moved: bool,
    /// Until the move: the last task that waited to read, and the last that waited to
    /// write, to be woken once the connection has moved.
    waiting: [Option<Waker>; 2],
}

/// Which of [`MovableTcp::waiting`] a poll is about.
#[derive(Clone, Copy)]
enum Way {
    Read = 0,
    Write = 1,
}

impl MovableTcp {
    pub fn new(tcp: TcpStream) -> MovableTcp {
        MovableTcp {
            tcp: Some(tcp),
            moved: false,
            waiting: [None, None],
        }
    }

    /// Whether the connection was moved to the bulk runtime.
    #[cfg(test)]
    pub(super) fn moved(&self) -> bool {
        self.moved
    }

    /// Runs `poll` on the connection, moved first when that is due, and notes the task
    /// when it has to wait `way`.
    #[inline]
    fn poll_with<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        way: Way,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.get_mut();
        let polled = match this.tcp() {
            Ok(tcp) => poll(Pin::new(tcp), cx),
            Err(error) => Poll::Ready(Err(error)),
        };
        if polled.is_pending() && !this.moved {
            // A task polls with the same waker each time, so this clones rarely.
            let waiting = &mut this.waiting[way as usize];
            if !waiting.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waiting = Some(cx.waker().clone());
            }
        }
        polled
    }

    /// The connection, first moved to the bulk runtime's driver when this runs there.
    /// Inlined, like the calls below: every read and write of every connection the
    /// gateway accepts passes here.
    #[inline]
    fn tcp(&mut self) -> io::Result<&mut TcpStream> {
        if !self.moved && on_bulk_thread() {
            self.move_to_bulk()?;
        }
        self.tcp
            .as_mut()
            .ok_or_else(|| io::Error::other("the connection was lost moving to the bulk runtime"))
    }

    #[cold]
    fn move_to_bulk(&mut self) -> io::Result<()> {
        self.moved = true;
        let Some(tcp) = self.tcp.take() else {
            return Ok(());
        };
        // Registering from a bulk worker thread registers with the bulk runtime's driver.
        // Readiness the socket already has is reported there at once. A failure (a driver
        // shutting down) has dropped the socket: the stream ends with the error.
        let moved = tcp.into_std().and_then(TcpStream::from_std);
        // The old registration's waiters were dropped unwoken: wake them to wait anew (or
        // to see the error). The task polling now may be among them; it polls once more.
        for waiting in self.waiting.iter_mut().filter_map(Option::take) {
            waiting.wake();
        }
        match moved {
            Ok(tcp) => {
                self.tcp = Some(tcp);
                tracing::trace!("a bulk stream's connection moved to the bulk runtime");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "a bulk stream's connection was lost moving to the bulk runtime");
                Err(error)
            }
        }
    }
}

/// Tells the bulk threads about `bytes` read or written: a moved connection is carried by
/// a bulk thread, which counts them; on one not moved, a small piece is interactive work.
#[inline]
fn tell_bulk_threads(moved: bool, bytes: usize) {
    if moved {
        give_way::carried(bytes);
    } else {
        give_way::moved_off_bulk(bytes);
    }
}

impl AsyncRead for MovableTcp {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let moved = self.moved;
        let polled = self.poll_with(cx, Way::Read, |tcp, cx| tcp.poll_read(cx, buf));
        if polled.is_ready() {
            tell_bulk_threads(moved, buf.filled().len() - before);
        }
        polled
    }
}

impl AsyncWrite for MovableTcp {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let moved = self.moved;
        let polled = self.poll_with(cx, Way::Write, |tcp, cx| tcp.poll_write(cx, buf));
        if let Poll::Ready(Ok(n)) = &polled {
            tell_bulk_threads(moved, *n);
        }
        polled
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let moved = self.moved;
        let polled = self.poll_with(cx, Way::Write, |tcp, cx| tcp.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(n)) = &polled {
            tell_bulk_threads(moved, *n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(cx, Way::Write, |tcp, cx| tcp.poll_flush(cx))
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(cx, Way::Write, |tcp, cx| tcp.poll_shutdown(cx))
    }
}
