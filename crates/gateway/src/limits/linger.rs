//! A lingering close for client connections. When the gateway answers before it has
//! read a request (a 413 for a body over the limit, a 431 for a head too large), the
//! client may still be sending. Closing a socket with unread input makes the kernel
//! answer with a reset, and a reset can destroy the answer in the client's receive
//! buffer before the client has read it. So a shutdown first sends our FIN (the answer
//! is complete), then reads and drops whatever the client still sends until it closes
//! too, it goes quiet, or a bound in time or bytes is reached.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::idle::IdleClock;

/// Longest time a closing connection keeps reading.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// A client silent for this long has stopped sending.
pub const LINGER_QUIET: Duration = Duration::from_secs(1);
/// Most bytes read and dropped while closing.
pub const LINGER_BYTES: u64 = 256 * 1024 * 1024;

enum State {
    Open,
    Lingering {
        until: Pin<Box<Sleep>>,
        quiet: Pin<Box<Sleep>>,
        dropped: u64,
    },
    Closed,
}

pub struct LingeringClose<IO> {
    io: IO,
    state: State,
    /// The connection's clock: an upgraded connection closes plainly.
    clock: Option<Arc<IdleClock>>,
}

impl<IO> LingeringClose<IO> {
    pub fn new(io: IO) -> LingeringClose<IO> {
        LingeringClose {
            io,
            state: State::Open,
            clock: None,
        }
    }

    /// Closes plainly once `clock`'s connection is upgraded ([`IdleClock::mark_upgraded`]).
    pub fn plain_after_upgrade(mut self, clock: Arc<IdleClock>) -> LingeringClose<IO> {
        self.clock = Some(clock);
        self
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for LingeringClose<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> LingeringClose<IO> {
    /// Reads and drops input until the client closes, goes quiet, or a bound is reached.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Lingering {
            until,
            quiet,
            dropped,
        } = &mut self.state
        else {
            return Poll::Ready(());
        };
        let mut sink = [0u8; 16 * 1024];
        loop {
            let mut read = ReadBuf::new(&mut sink);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    *dropped += read.filled().len() as u64;
                    if *dropped >= LINGER_BYTES {
                        return Poll::Ready(());
                    }
                    quiet
                        .as_mut()
                        .reset(tokio::time::Instant::now() + LINGER_QUIET);
                }
                // Closed by the client, or broken: nothing left to protect.
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => {
                    if until.as_mut().poll(cx).is_ready() || quiet.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let State::Open = this.state {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            if this.clock.as_ref().is_some_and(|c| c.is_upgraded()) {
                this.state = State::Closed;
                return Poll::Ready(Ok(()));
            }
            this.state = State::Lingering {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                quiet: Box::pin(tokio::time::sleep(LINGER_QUIET)),
                dropped: 0,
            };
        }
        ready!(this.poll_linger(cx));
        this.state = State::Closed;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_shutdown_reads_until_the_client_closes() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = LingeringClose::new(server);
        io.write_all(b"answer").await.unwrap();
        let closing = tokio::spawn(async move { io.shutdown().await });
        // The client still sends after the answer, and reads the answer afterwards.
        for _ in 0..100 {
            client.write_all(&[b'x'; 1000]).await.unwrap();
        }
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
        closing.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_left_after_the_quiet_time() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut io = LingeringClose::new(server);
        let started = tokio::time::Instant::now();
        io.shutdown().await.unwrap();
        assert!(started.elapsed() >= LINGER_QUIET && started.elapsed() < LINGER_TIME);
    }
}
