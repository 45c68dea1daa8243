//! A framed lane's reader (`portico_tunnel::lane::framed`) on arbitrary bytes arriving in
//! pieces of arbitrary size: no panic, no frame larger than a lane carries, the frames it
//! hands out are the bytes that came, in order, each as long as its header says, and the
//! stream ends cleanly only where a frame ended.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;
use libfuzzer_sys::fuzz_target;
use portico_tunnel::frame::HEADER_LEN;
use portico_tunnel::lane::framed::FramedLane;
use portico_tunnel::lane::LANE_MAX_FRAME;
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out `input` at most `piece` bytes per read, then the end.
struct Pieces<'a> {
    input: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.piece.min(self.input.len()).min(buf.remaining());
        buf.put_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let (ahead, input) = rest.split_at(rest.len().min(usize::from(piece % 16)));
    let mut lane = FramedLane::new(
        Pieces {
            input,
            piece: usize::from(piece).max(1) * 37,
        },
        Bytes::copy_from_slice(ahead),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut seen = Vec::new();
    loop {
        match Pin::new(&mut lane).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                assert!(frame.len() >= HEADER_LEN);
                let len = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                assert!(len <= LANE_MAX_FRAME);
                assert_eq!(frame.len(), HEADER_LEN + len as usize);
                seen.extend_from_slice(&frame);
            }
            Poll::Ready(Some(Err(_))) => {
                assert!(rest.starts_with(&seen));
                return;
            }
            Poll::Ready(None) => {
                assert_eq!(&seen[..], rest, "a clean end hands out every byte");
                return;
            }
            Poll::Pending => panic!("an in-memory reader never waits"),
        }
    }
});
