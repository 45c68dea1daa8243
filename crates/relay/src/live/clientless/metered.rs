//! The tunnel stream of one clientless request, with its bytes counted both ways and added
//! to the connection session's counters when the stream is dropped, whatever ended it (the
//! response done, a WebSocket closed, the session cut). Bytes are counted as they cross
//! the tunnel, so for `https` they include the TLS records.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use portico_store::Store;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, metered for session `tenant`/`id`.
pub struct Metered<S> {
    inner: S,
    store: Store,
    tenant: String,
    id: String,
    /// Browser to device.
    up: u64,
    /// Device to browser.
    down: u64,
}

impl<S> Metered<S> {
    pub fn new(inner: S, store: Store, tenant: &str, id: &str) -> Metered<S> {
        Metered {
            inner,
            store,
            tenant: tenant.to_string(),
            id: id.to_string(),
            up: 0,
            down: 0,
        }
    }
}

impl<S> Drop for Metered<S> {
    fn drop(&mut self) {
        if self.up == 0 && self.down == 0 {
            return;
        }
        // Dropped outside a runtime only when the process ends; the counts go with it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, tenant, id) = (
            self.store.clone(),
            std::mem::take(&mut self.tenant),
            std::mem::take(&mut self.id),
        );
        let (up, down) = (
            i64::try_from(self.up).unwrap_or(i64::MAX),
            i64::try_from(self.down).unwrap_or(i64::MAX),
        );
        runtime.spawn(async move {
            if let Err(error) = store.add_connection_bytes(&tenant, &id, up, down).await {
                tracing::warn!(%tenant, session = %id, %error, "could not count clientless bytes");
            }
        });
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.down = self.down.saturating_add(read as u64);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            self.up = self.up.saturating_add(*written as u64);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
