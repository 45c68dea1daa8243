//! The head guard on arbitrary connection bytes, read in arbitrary pieces: no panic, the
//! bytes it hands on are always a prefix of what arrived, and a rejection is answered with
//! an HTTP/1.1 error response when the connection shuts down.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::head_guard::HeadGuard;
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection that delivers `input` in pieces of the sizes in `steps`.
struct Connection {
    input: Vec<u8>,
    pos: usize,
    steps: Vec<usize>,
    step: usize,
    written: Rc<RefCell<Vec<u8>>>,
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let piece = self.steps[self.step % self.steps.len()];
        self.step += 1;
        let n = piece.min(self.input.len() - self.pos).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.input[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.borrow_mut().extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let max_head = 32 + usize::from(data[0]) * 8;
    let steps: Vec<usize> = data[1..5].iter().map(|&b| usize::from(b) + 1).collect();
    let reader_size = usize::from(data[5] & 0x7f) * 64 + 1;
    let switch = data[5] & 0x80 != 0;
    let mut responses = 0;
    let input = data[6..].to_vec();
    let written = Rc::new(RefCell::new(Vec::new()));
    let connection = Connection {
        input: input.clone(),
        pos: 0,
        steps,
        step: 0,
        written: written.clone(),
    };
    let mut guard = HeadGuard::new(connection, max_head, None);

    let mut cx = Context::from_waker(Waker::noop());
    let mut delivered = Vec::new();
    let mut buf = vec![0u8; reader_size];
    // Every poll moves at least one byte or ends, so this bound is never reached.
    for _ in 0..2 * input.len() + 4 {
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut guard).poll_read(&mut cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => break,
            Poll::Ready(Ok(())) => delivered.extend_from_slice(read.filled()),
            Poll::Ready(Err(e)) => panic!("the connection never fails: {e}"),
            // The guard holds the bytes after an upgrade request until a response shows
            // whether the protocol switches: answer as a server would, one way or the other.
            Poll::Pending => {
                let response: &[u8] = if switch {
                    b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
                } else {
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
                };
                responses += 1;
                assert!(
                    responses <= input.len() + 1,
                    "the guard waits without an upgrade request"
                );
                let written = Pin::new(&mut guard).poll_write(&mut cx, response);
                assert!(matches!(written, Poll::Ready(Ok(_))));
            }
        }
    }
    assert!(
        input.starts_with(&delivered),
        "the guard changed or reordered bytes"
    );

    let shutdown = Pin::new(&mut guard).poll_shutdown(&mut cx);
    assert!(matches!(shutdown, Poll::Ready(Ok(()))));
    let written = written.borrow();
    // Without responses of this harness in it, what was written is the guard's own.
    if responses == 0 && !written.is_empty() {
        assert!(written.starts_with(b"HTTP/1.1 4") || written.starts_with(b"HTTP/1.1 5"));
        assert!(
            delivered.len() < input.len(),
            "a rejection withholds the rejected head"
        );
    }
});
