//! Refusing connections over the instance's limit (GW-13): a 503 with `Retry-After`,
//! never a silent hang. The refusal is written at once, the client's request is read and
//! dropped for a moment so that closing does not reset the connection before the client
//! has read the answer, and then the connection closes. An HTTP/2 client (TLS with ALPN
//! `h2`) gets the same 503 as an HTTP/2 response to the requests it sends at once.

use crate::error::{http1_bytes, render, ErrorFormat, GatewayError};
use http::{header, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a refused client's bytes are read and dropped before the connection closes.
const LINGER: Duration = Duration::from_millis(500);

fn refusal(limit: usize) -> GatewayError {
    GatewayError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The gateway serves at most {limit} connections at once; try again shortly"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// Refuses a connection in the protocol it speaks.
pub async fn refuse_as<IO>(io: IO, http2: bool, limit: usize)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if http2 {
        refuse_http2(io, limit).await
    } else {
        refuse(io, limit).await
    }
}

pub async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, limit: usize) {
    let response = http1_bytes(&refusal(limit), ErrorFormat::Json, &crate::new_request_id());
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

/// Answers the HTTP/2 requests that arrive within [`LINGER`] with the 503, then sends
/// GOAWAY and closes.
async fn refuse_http2<IO>(io: IO, limit: usize)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = render(&refusal(limit), request.headers(), &crate::new_request_id());
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = crate::http2::builder(16 * 1024).serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    if tokio::time::timeout(LINGER, connection.as_mut())
        .await
        .is_err()
    {
        connection.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(LINGER, connection).await;
    }
}
