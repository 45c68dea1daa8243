//! The two upgraded connections of a WebSocket, as the relay reads and writes them.
//!
//! hyper hands an upgraded connection over as an `Upgraded`: the connection boxed behind a
//! trait object, with the bytes hyper had read beyond the handshake in front of it, seen
//! through hyper's IO traits; the relay then adapts it back to tokio's. Every read and
//! write of a relayed message went through those layers, about a fifth of the
//! instructions Portico spends per WebSocket round trip. So a connection of a kind the
//! gateway makes itself (a client's or a backend's, plain or TLS) is taken back out of
//! them, the bytes hyper had read ahead kept in front; any other kind
//! stays as hyper handed it over.

use crate::head_guard::HeadGuard;
use crate::server::ClientIo;
use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use portico_fair::bulk::MovableTcp;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client connection as the gateway's HTTP/1.1 server wraps it (see the listener).
type Client<IO> = HeadGuard<ClientIo<IO>>;
type ServerTls = tokio_rustls::server::TlsStream<MovableTcp>;
/// A backend connection as the gateway's client makes it.
type Backend = MaybeHttpsStream<TokioIo<TcpStream>>;
type ClientTls = tokio_rustls::client::TlsStream<TokioIo<TokioIo<TcpStream>>>;

/// One side of a relayed WebSocket: the bytes hyper had read ahead, then a connection of
/// the plain kind `P` or the TLS kind `T`.
pub(super) struct Side<P, T> {
    ahead: Bytes,
    io: Connection<P, T>,
}

/// A side's connection, boxed (as hyper had it) so that a relay's sides stay small
/// whichever kind they are.
enum Connection<P, T> {
    Plain(Box<P>),
    Tls(Box<T>),
    /// Of a kind the gateway does not make itself: as hyper handed it over (with the
    /// bytes read ahead still inside).
    Upgraded(TokioIo<Upgraded>),
}

/// A client's side: its connection as the gateway's server accepted it.
pub(super) type ClientSide = Side<Client<MovableTcp>, Client<ServerTls>>;
/// A backend's side: its connection as the gateway's client opened it.
pub(super) type BackendSide = Side<TcpStream, ClientTls>;

impl ClientSide {
    pub(super) fn client(upgraded: Upgraded) -> ClientSide {
        let upgraded = match upgraded.downcast::<TokioIo<Client<MovableTcp>>>() {
            Ok(parts) => {
                let io = Connection::Plain(Box::new(parts.io.into_inner()));
                return Side::new(parts.read_buf, io);
            }
            Err(upgraded) => upgraded,
        };
        match upgraded.downcast::<TokioIo<Client<ServerTls>>>() {
            Ok(parts) => Side::new(
                parts.read_buf,
                Connection::Tls(Box::new(parts.io.into_inner())),
            ),
            Err(upgraded) => Side::hypers(upgraded),
        }
    }
}

impl BackendSide {
    pub(super) fn backend(upgraded: Upgraded) -> BackendSide {
        match upgraded.downcast::<Backend>() {
            Ok(parts) => {
                let io = match parts.io {
                    MaybeHttpsStream::Http(stream) => {
                        Connection::Plain(Box::new(stream.into_inner()))
                    }
                    MaybeHttpsStream::Https(stream) => {
                        Connection::Tls(Box::new(stream.into_inner()))
                    }
                };
                Side::new(parts.read_buf, io)
            }
            Err(upgraded) => Side::hypers(upgraded),
        }
    }
}

impl<P, T> Side<P, T> {
    fn new(ahead: Bytes, io: Connection<P, T>) -> Side<P, T> {
        let mut side = Side { ahead, io };
        side.release_if_read();
        side
    }

    fn hypers(upgraded: Upgraded) -> Side<P, T> {
        Side::new(Bytes::new(), Connection::Upgraded(TokioIo::new(upgraded)))
    }

    /// Whether the side was taken out of hyper's layers.
    pub(super) fn is_unwrapped(&self) -> bool {
        !matches!(self.io, Connection::Upgraded(_))
    }

    /// Bytes from hyper share its whole read buffer, several kilobytes, also once empty:
    /// a WebSocket that held it would cost twice its memory.
    fn release_if_read(&mut self) {
        if self.ahead.is_empty() {
            self.ahead = Bytes::new();
        }
    }
}

/// Calls `$call` on whichever connection `$side` holds.
macro_rules! on_connection {
    ($side:expr, $io:ident => $call:expr) => {
        match &mut $side.get_mut().io {
            Connection::Plain($io) => {
                let $io = &mut **$io;
                $call
            }
            Connection::Tls($io) => {
                let $io = &mut **$io;
                $call
            }
            Connection::Upgraded($io) => $call,
        }
    };
}

impl<P, T> AsyncRead for Side<P, T>
where
    P: AsyncRead + Unpin,
    T: AsyncRead + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ahead.is_empty() {
            return on_connection!(self, io => Pin::new(io).poll_read(cx, buf));
        }
        let n = self.ahead.len().min(buf.remaining());
        buf.put_slice(&self.ahead[..n]);
        self.ahead.advance(n);
        self.release_if_read();
        Poll::Ready(Ok(()))
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
        on_connection!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_connection!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Connection::Plain(io) => io.is_write_vectored(),
            Connection::Tls(io) => io.is_write_vectored(),
            Connection::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_connection!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_connection!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A plain side over an in-memory connection.
    fn plain(ahead: Bytes, io: DuplexStream) -> Side<DuplexStream, DuplexStream> {
        Side::new(ahead, Connection::Plain(Box::new(io)))
    }

    #[tokio::test]
    async fn bytes_read_ahead_come_first_then_the_connection() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut side = plain(Bytes::from_static(b"ahead "), near);
        far.write_all(b"then more").await.unwrap();
        drop(far);
        let mut first = [0u8; 3];
        side.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"ahe");
        let mut rest = String::new();
        side.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "ad then more");
    }

    /// The relay reads a client's WebSocket without hyper's layers only if the upgraded
    /// connection is the head guard over what `client_io` builds; a layer added to one and
    /// not the other would silently cost every relayed message those layers again. (A
    /// layer added in the listener outside `client_io` is caught by the WebSocket tests
    /// of the gateway and of `portico serve`, which read the relays' path from the
    /// metrics.)
    #[tokio::test]
    async fn a_client_upgraded_through_the_listeners_layers_is_taken_back_out_of_hyper() {
        use crate::limits::idle::IdleClock;
        use http::{Request, Response, StatusCode};
        use http_body_util::Empty;
        use hyper::body::Incoming;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let clock = IdleClock::new();
        let accepted = MovableTcp::new(accepted);
        let io = HeadGuard::new(crate::server::client_io(accepted, &clock), 16 * 1024, None);
        let (kind_tx, kind_rx) = tokio::sync::oneshot::channel();
        let kind_tx = std::sync::Mutex::new(Some(kind_tx));
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let kind_tx = kind_tx.lock().unwrap().take();
            async move {
                tokio::spawn(async move {
                    let upgraded = hyper::upgrade::on(request).await.unwrap();
                    let side = ClientSide::client(upgraded);
                    let kind = match side.io {
                        Connection::Plain(_) => "plain",
                        Connection::Tls(_) => "tls",
                        Connection::Upgraded(_) => "hyper's",
                    };
                    let _ = kind_tx.unwrap().send(kind);
                });
                let response = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        );
        client
            .write_all(
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            )
            .await
            .unwrap();
        let kind = tokio::time::timeout(std::time::Duration::from_secs(10), kind_rx)
            .await
            .expect("upgraded within 10 s")
            .unwrap();
        assert_eq!(kind, "plain");
    }

    #[tokio::test]
    async fn hypers_read_buffer_is_let_go_once_read() {
        let buffer = Bytes::from(vec![7u8; 8192]);
        let (near, _far) = tokio::io::duplex(64);
        let mut side = plain(buffer.slice(0..3), near);
        assert!(!buffer.is_unique(), "held while bytes are ahead");
        let mut three = [0u8; 3];
        side.read_exact(&mut three).await.unwrap();
        assert!(buffer.is_unique(), "let go once they were read");
        let untouched = Bytes::from(vec![7u8; 8192]);
        let _side = plain(untouched.slice(0..0), tokio::io::duplex(64).0);
        assert!(untouched.is_unique(), "nothing ahead: nothing held");
    }
}
