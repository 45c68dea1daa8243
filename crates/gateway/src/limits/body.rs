//! A request body that counts its bytes on the way through and fails once the request
//! or one of its multipart parts passes its limit (GW-13). Bytes past a limit are never
//! handed on: the frame that crosses it becomes the error.

use super::multipart::{Framing, PartScanner};
use super::Exceeded;
use crate::body::{Body, BoxError};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Which limit a body passed, if any; shared between the body (which may live in a
/// backend connection's task) and the request handler that answers the client.
#[derive(Debug, Clone, Default)]
pub struct Tripwire(Arc<AtomicU8>);

impl Tripwire {
    fn trip(&self, exceeded: Exceeded) {
        self.0.store(exceeded as u8, Ordering::Release);
    }

    pub fn get(&self) -> Option<Exceeded> {
        match self.0.load(Ordering::Acquire) {
            x if x == Exceeded::RequestSize as u8 => Some(Exceeded::RequestSize),
            x if x == Exceeded::FileSize as u8 => Some(Exceeded::FileSize),
            _ => None,
        }
    }
}

pub struct LimitedBody {
    inner: Body,
    seen: u64,
    max: u64,
    parts: Option<PartScanner>,
    tripwire: Tripwire,
    failed: bool,
}

impl LimitedBody {
    /// `max` bytes in all; with a multipart `framing`, `max_part` bytes in each part.
    pub fn new(inner: Body, max: u64, framing: &Framing, max_part: u64) -> LimitedBody {
        let parts = match framing {
            Framing::NotMultipart => None,
            other => Some(PartScanner::new(other, max_part)),
        };
        LimitedBody {
            inner,
            seen: 0,
            max,
            parts,
            tripwire: Tripwire::default(),
            failed: false,
        }
    }

    pub fn tripwire(&self) -> Tripwire {
        self.tripwire.clone()
    }

    fn fail(&mut self, exceeded: Exceeded) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.tripwire.trip(exceeded);
        Poll::Ready(Some(Err(Box::new(exceeded))))
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.max {
                        return this.fail(Exceeded::RequestSize);
                    }
                    if let Some(parts) = &mut this.parts {
                        if parts.feed(data).is_err() {
                            return this.fail(Exceeded::FileSize);
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            None => {
                if let Some(parts) = &mut this.parts {
                    if parts.finish().is_err() {
                        return this.fail(Exceeded::FileSize);
                    }
                }
                Poll::Ready(None)
            }
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::boxed;
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(pieces: &[&'static str]) -> Body {
        let frames = pieces
            .iter()
            .map(|p| {
                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(p.as_bytes())))
            })
            .collect::<Vec<_>>();
        boxed(StreamBody::new(stream::iter(frames)))
    }

    #[tokio::test]
    async fn the_frame_that_passes_the_limit_is_an_error() {
        let body = LimitedBody::new(chunks(&["abc", "de", "f"]), 5, &Framing::NotMultipart, 0);
        let tripwire = body.tripwire();
        let err = body.collect().await.expect_err("over the limit");
        assert_eq!(err.downcast_ref::<Exceeded>(), Some(&Exceeded::RequestSize));
        assert_eq!(tripwire.get(), Some(Exceeded::RequestSize));

        let body = LimitedBody::new(chunks(&["abc", "de"]), 5, &Framing::NotMultipart, 0);
        let tripwire = body.tripwire();
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcde");
        assert_eq!(tripwire.get(), None);
    }

    #[tokio::test]
    async fn a_part_over_its_limit_fails_the_body() {
        let framing = Framing::Boundary(b"b".to_vec());
        let body = LimitedBody::new(chunks(&["--b\r\n\r\n12", "34\r\n--b--"]), 100, &framing, 6);
        assert!(body.collect().await.is_ok());
        let body = LimitedBody::new(chunks(&["--b\r\n\r\n12", "345\r\n--b--"]), 100, &framing, 6);
        let tripwire = body.tripwire();
        let err = body.collect().await.expect_err("part over the limit");
        assert_eq!(err.downcast_ref::<Exceeded>(), Some(&Exceeded::FileSize));
        assert_eq!(tripwire.get(), Some(Exceeded::FileSize));
    }
}
