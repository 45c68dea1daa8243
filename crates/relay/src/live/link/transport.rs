//! A link's messages over TCP: each tunnel message as a 4-byte big-endian length and its
//! bytes (what WebSocket's binary messages are for an endpoint's tunnel).

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The tunnel transport over an authenticated link connection.
pub fn messages<S>(
    io: S,
) -> impl Stream<Item = Result<Bytes, std::io::Error>>
       + Sink<Bytes, Error = std::io::Error>
       + Send
       + 'static
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(portico_tunnel::frame::MAX_TRANSPORT_MESSAGE)
        .new_codec();
    Framed::new(io, codec).map_ok(BytesMut::freeze)
}
