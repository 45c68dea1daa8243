//! The two upgraded connections of a WebSocket, as the relay reads and writes them.
//!
//! hyper hands an upgraded connection over as an `Upgraded`: the connection boxed behind a
//! trait object, with the bytes hyper had read beyond the handshake in front of it, seen
//! through hyper's IO traits; the relay then adapts it back to tokio's. Every read and
//! write of a relayed message went through those layers, about a fifth of the
//! instructions Portico spends per WebSocket round trip. So a connection of a kind the
//! gateway makes itself (a client's plain or TLS connection, a backend's plain one) is
//! taken back out of them, the bytes hyper had read ahead kept in front; any other kind
//! stays as hyper handed it over.

use crate::head_guard::HeadGuard;
use crate::limits::idle::IdleIo;
use crate::limits::linger::LingeringClose;
use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client connection as the gateway's HTTP/1.1 server wraps it (see the listener).
type Client<IO> = HeadGuard<LingeringClose<IdleIo<IO>>>;
type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;
/// A backend connection as the gateway's client makes it.
type Backend = MaybeHttpsStream<TokioIo<TcpStream>>;
type ClientTls = tokio_rustls::client::TlsStream<TokioIo<TokioIo<TcpStream>>>;

/// One side of a relayed WebSocket: a connection of the plain kind `P` or the TLS kind
/// `T`, boxed (as hyper had it) so that a relay's sides stay small whichever they are.
pub(super) enum Side<P, T> {
    Plain(Box<ReadAhead<P>>),
    Tls(Box<ReadAhead<T>>),
    /// Of a kind the gateway does not make itself: as hyper handed it over.
    Upgraded(TokioIo<Upgraded>),
}

/// A client's side: its connection as the gateway's server accepted it.
pub(super) type ClientSide = Side<Client<TcpStream>, Client<ServerTls>>;
/// A backend's side: its connection as the gateway's client opened it.
pub(super) type BackendSide = Side<TcpStream, ClientTls>;

impl ClientSide {
    pub(super) fn client(upgraded: Upgraded) -> ClientSide {
        let upgraded = match upgraded.downcast::<TokioIo<Client<TcpStream>>>() {
            Ok(parts) => {
                return Side::Plain(ReadAhead::boxed(parts.read_buf, parts.io.into_inner()))
            }
            Err(upgraded) => upgraded,
        };
        match upgraded.downcast::<TokioIo<Client<ServerTls>>>() {
            Ok(parts) => Side::Tls(ReadAhead::boxed(parts.read_buf, parts.io.into_inner())),
            Err(upgraded) => Side::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl BackendSide {
    pub(super) fn backend(upgraded: Upgraded) -> BackendSide {
        match upgraded.downcast::<Backend>() {
            Ok(parts) => match parts.io {
                MaybeHttpsStream::Http(stream) => {
                    Side::Plain(ReadAhead::boxed(parts.read_buf, stream.into_inner()))
                }
                MaybeHttpsStream::Https(stream) => {
                    Side::Tls(ReadAhead::boxed(parts.read_buf, stream.into_inner()))
                }
            },
            Err(upgraded) => Side::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl<P, T> Side<P, T> {
    /// Whether the side was taken out of hyper's layers.
    pub(super) fn is_unwrapped(&self) -> bool {
        !matches!(self, Side::Upgraded(_))
    }
}

/// Calls `$call` on whichever connection `$side` holds.
macro_rules! on_side {
    ($side:expr, $io:ident => $call:expr) => {
        match $side.get_mut() {
            Side::Plain($io) => {
                let $io = &mut **$io;
                $call
            }
            Side::Tls($io) => {
                let $io = &mut **$io;
                $call
            }
            Side::Upgraded($io) => $call,
        }
    };
}

impl<P, T> AsyncRead for Side<P, T>
where
    P: AsyncRead + Unpin,
    T: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_side!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl<P, T> AsyncWrite for Side<P, T>
where
    P: AsyncWrite + Unpin,
    T: AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_side!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_side!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Side::Plain(io) => io.io.is_write_vectored(),
            Side::Tls(io) => io.io.is_write_vectored(),
            Side::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_side!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_side!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

/// A connection with the bytes hyper had already read from it in front.
pub(super) struct ReadAhead<IO> {
    ahead: Bytes,
    io: IO,
}

impl<IO> ReadAhead<IO> {
    fn new(ahead: Bytes, io: IO) -> ReadAhead<IO> {
        let mut side = ReadAhead { ahead, io };
        side.release_if_read();
        side
    }

    /// Bytes from hyper share its whole read buffer, several kilobytes, also once empty:
    /// a WebSocket that held it would cost twice its memory.
    fn release_if_read(&mut self) {
        if self.ahead.is_empty() {
            self.ahead = Bytes::new();
        }
    }

    fn boxed(ahead: Bytes, io: IO) -> Box<ReadAhead<IO>> {
        Box::new(ReadAhead::new(ahead, io))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ReadAhead<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ahead.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.ahead.len().min(buf.remaining());
        buf.put_slice(&self.ahead[..n]);
        self.ahead.advance(n);
        self.release_if_read();
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ReadAhead<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
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
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_read_ahead_come_first_then_the_connection() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut side = ReadAhead::new(Bytes::from_static(b"ahead "), near);
        far.write_all(b"then more").await.unwrap();
        drop(far);
        let mut first = [0u8; 3];
        side.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"ahe");
        let mut rest = String::new();
        side.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "ad then more");
    }

    #[tokio::test]
    async fn hypers_read_buffer_is_let_go_once_read() {
        let buffer = Bytes::from(vec![7u8; 8192]);
        let (near, _far) = tokio::io::duplex(64);
        let mut side = ReadAhead::new(buffer.slice(0..3), near);
        assert!(!buffer.is_unique(), "held while bytes are ahead");
        let mut three = [0u8; 3];
        side.read_exact(&mut three).await.unwrap();
        assert!(buffer.is_unique(), "let go once they were read");
        let untouched = Bytes::from(vec![7u8; 8192]);
        let _side = ReadAhead::new(untouched.slice(0..0), tokio::io::duplex(64).0);
        assert!(untouched.is_unique(), "nothing ahead: nothing held");
    }
}
