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
