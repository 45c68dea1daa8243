//! The tunnel's transport over a WebSocket: each binary message carries tunnel frames
//! (DESIGN "Tunnel protocol"). Pings and pongs are the WebSocket library's business; a text
//! message is a protocol error; a close ends the stream of messages.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    #[error("the peer sent a text message; the tunnel carries binary messages only")]
    Text,
}

/// A WebSocket seen as a stream and sink of tunnel messages, for `portico_tunnel::Tunnel::new`.
pub struct WebSocketTransport<S> {
    socket: WebSocketStream<S>,
}

impl<S> WebSocketTransport<S> {
    pub fn new(socket: WebSocketStream<S>) -> Self {
        WebSocketTransport { socket }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketTransport<S> {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let message = ready!(Pin::new(&mut self.socket).poll_next(cx));
            return Poll::Ready(match message {
                None | Some(Ok(Message::Close(_))) => None,
                Some(Ok(Message::Binary(data))) => Some(Ok(data)),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => Some(Err(TransportError::Text)),
                Some(Err(error)) => Some(Err(error.into())),
            });
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for WebSocketTransport<S> {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket)
            .poll_ready(cx)
            .map_err(Into::into)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<(), Self::Error> {
        Pin::new(&mut self.socket)
            .start_send(Message::Binary(item))
            .map_err(Into::into)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket)
            .poll_flush(cx)
            .map_err(Into::into)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.socket)
            .poll_close(cx)
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn binary_passes_pings_are_skipped_text_is_refused_close_ends() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut transport =
            WebSocketTransport::new(WebSocketStream::from_raw_socket(a, Role::Client, None).await);
        let mut peer = WebSocketStream::from_raw_socket(b, Role::Server, None).await;

        peer.send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        peer.send(Message::Binary(Bytes::from_static(b"frame")))
            .await
            .unwrap();
        assert_eq!(transport.next().await.unwrap().unwrap(), &b"frame"[..]);

        transport.send(Bytes::from_static(b"back")).await.unwrap();
        // The peer sees the automatic pong first, then the frame.
        let mut seen = Vec::new();
        for _ in 0..2 {
            seen.push(peer.next().await.unwrap().unwrap());
        }
        assert!(
            matches!(&seen[0], Message::Pong(p) if p == &b"p"[..]),
            "{seen:?}"
        );
        assert!(
            matches!(&seen[1], Message::Binary(b) if b == &b"back"[..]),
            "{seen:?}"
        );

        peer.send(Message::text("hello")).await.unwrap();
        assert!(matches!(
            transport.next().await,
            Some(Err(TransportError::Text))
        ));
        peer.close(None).await.unwrap();
        assert!(transport.next().await.is_none());
    }
}
