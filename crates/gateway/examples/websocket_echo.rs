//! A WebSocket echo server for conformance runs (`bench/autobahn`): every text and binary
//! message comes back as it was; pings are answered and closes completed by
//! tokio-tungstenite. Not part of the Portico binary.
//!
//! `cargo run -p portico-gateway --example websocket_echo -- 127.0.0.1:9002`

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("websocket echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // The conformance cases send messages of up to 16 MiB in one frame.
            let config = WebSocketConfig::default()
                .max_message_size(None)
                .max_frame_size(None);
            let Ok(mut socket) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            while let Some(Ok(message)) = socket.next().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    return;
                }
            }
        });
    }
}
