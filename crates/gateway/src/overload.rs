//! Refusing connections over the instance's limit (GW-13): a 503 with `Retry-After`,
//! never a silent hang. The refusal is written at once, the client's request is read and
//! dropped for a moment so that closing does not reset the connection before the client
//! has read the answer, and then the connection closes.

use crate::error::{http1_bytes, ErrorFormat, GatewayError};
use http::{header, HeaderValue, StatusCode};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a refused client's bytes are read and dropped before the connection closes.
const LINGER: Duration = Duration::from_millis(500);

pub async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, limit: usize) {
    let err = GatewayError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The gateway serves at most {limit} connections at once; try again shortly"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
    let response = http1_bytes(&err, ErrorFormat::Json, &crate::new_request_id());
    if io.write_all(&response).await.is_err() || io.flush().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let _ = io.shutdown().await;
}
