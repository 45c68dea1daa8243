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
//! The move is one way and once. A socket must be polled by one task at a time: taking it
//! off a driver drops the wakers registered there, so a second task still waiting on the
//! old registration would never be woken. Every caller of [`super::carry`] moves the whole
//! stream, both of its sockets, as one task.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
}

impl MovableTcp {
    pub fn new(tcp: TcpStream) -> MovableTcp {
        MovableTcp {
            tcp: Some(tcp),
            moved: false,
        }
    }

    /// Whether the connection was moved to the bulk runtime.
    #[cfg(test)]
    pub(super) fn moved(&self) -> bool {
        self.moved
    }

    /// Runs `poll` on the connection, moved first when that is due.
    #[inline]
    fn poll_with<T>(
        self: Pin<&mut Self>,
        poll: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.get_mut().tcp() {
            Ok(tcp) => poll(Pin::new(tcp)),
            Err(error) => Poll::Ready(Err(error)),
        }
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
        match tcp.into_std().and_then(TcpStream::from_std) {
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

impl AsyncRead for MovableTcp {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_with(|tcp| tcp.poll_read(cx, buf))
    }
}

impl AsyncWrite for MovableTcp {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(|tcp| tcp.poll_write(cx, buf))
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(|tcp| tcp.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(|tcp| tcp.poll_flush(cx))
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(|tcp| tcp.poll_shutdown(cx))
    }
}
