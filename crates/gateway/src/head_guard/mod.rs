//! A guard in front of the HTTP/1 parser. It reads every request head before hyper does,
//! so that heads hyper would refuse on its own (oversized, malformed, an unparsable
//! target, ambiguous body framing) are answered with a gateway error body (GW-13, GW-15)
//! instead of hyper's bare status line.
//!
//! The guard passes bytes through unchanged; it only needs to know where each request
//! ends, so it follows the body framing (`Content-Length` or chunked) of every request.
//! After a WebSocket upgrade or CONNECT request it waits for the response: on `101` (or a
//! `2xx` to CONNECT) it steps aside; otherwise it goes on checking the requests after it. A rejected head is never shown to hyper: the
//! guard reports end-of-stream, lets hyper finish any response in flight (the server runs
//! with half-close enabled), and writes its error when hyper shuts the connection down.

mod chunked;

use crate::error::{negotiate, ErrorFormat, GatewayError};
use bytes::{Buf, Bytes, BytesMut};
use chunked::Chunked;
use http::{HeaderMap, HeaderValue, StatusCode};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most headers hyper accepts in one request by default; the guard agrees with it.
const MAX_HEADERS: usize = 100;

/// The head buffer grows by this much when less than [`MIN_READ`] bytes of it are free, so
/// that a read takes what a client sent at once.
const READ_SIZE: usize = 8 * 1024;
const MIN_READ: usize = 1024;

/// Called once when the guard rejects a head, with the status, the reason and the request
/// id it answered.
pub type OnReject = Box<dyn Fn(StatusCode, &str, &str) + Send + Sync>;

pub struct HeadGuard<IO> {
    io: IO,
    max_head: usize,
    state: State,
    /// Bytes read from the connection and not yet handed to hyper.
    buf: BytesMut,
    /// How many bytes at the front of `buf` are checked and may be handed to hyper.
    ready: usize,
    /// Where in `buf` the search for the end of the head resumes.
    scanned: usize,
    /// The error response waiting for hyper to shut the connection down.
    error: Option<Bytes>,
    /// The reader waiting for an upgrade's response.
    waiting: Option<Waker>,
    on_reject: Option<OnReject>,
    /// Time a client has to complete a head once it has sent its first byte.
    head_timeout: Option<Duration>,
    /// Runs while a head is partly received.
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunked),
    /// After a WebSocket upgrade or CONNECT head: nothing more is handed on until the
    /// response shows whether the connection switches protocols.
    AwaitingResponse {
        connect: bool,
    },
    /// An upgraded connection (WebSocket, CONNECT): no more HTTP/1 to follow.
    Passthrough,
    Rejected,
}

impl<IO> HeadGuard<IO> {
    pub fn new(io: IO, max_head: usize, on_reject: Option<OnReject>) -> HeadGuard<IO> {
        HeadGuard {
            io,
            max_head,
            state: State::Head,
            buf: BytesMut::with_capacity(8 * 1024),
            ready: 0,
            scanned: 0,
            error: None,
            waiting: None,
            on_reject,
            head_timeout: None,
            head_deadline: None,
        }
    }

    /// Answers 408 when a head is not complete `timeout` after its first byte (against
    /// slow-header clients). The time before a head's first byte is the connection's
    /// idle time, which has a limit of its own.
    pub fn with_head_timeout(mut self, timeout: Duration) -> HeadGuard<IO> {
        self.head_timeout = Some(timeout);
        self
    }

    /// Pending until the head deadline passes; then the head is rejected with 408 and
    /// hyper is shown the end of the stream.
    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let partial_head = self.state == State::Head && self.buf.len() > self.ready;
        let Some(timeout) = self.head_timeout.filter(|_| partial_head) else {
            self.head_deadline = None;
            return Poll::Pending;
        };
        let deadline = self
            .head_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(deadline.as_mut().poll(cx));
        self.head_deadline = None;
        let err = GatewayError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "The request head was not complete within {} s",
                timeout.as_secs_f64()
            ),
        );
        self.reject(err, ErrorFormat::Json);
        Poll::Ready(Ok(()))
    }

    /// Advances the state machine over the bytes buffered so far. Returns once some
    /// bytes are ready, or more input is needed, or the request was rejected.
    fn process(&mut self) {
        while self.ready < self.buf.len() {
            let pending = &self.buf[self.ready..];
            match &mut self.state {
                State::Head => {
                    match find_head_end(pending, self.scanned.saturating_sub(self.ready)) {
                        Some(len) if len > self.max_head => {
                            return self.reject(too_large(self.max_head), ErrorFormat::Json)
                        }
                        Some(len) => match check_head(&pending[..len]) {
                            Ok(next) => {
                                self.head_deadline = None;
                                self.ready += len;
                                self.scanned = self.ready;
                                self.state = next;
                            }
                            Err((err, format)) => return self.reject(err, format),
                        },
                        None if pending.len() > self.max_head => {
                            return self.reject(too_large(self.max_head), ErrorFormat::Json)
                        }
                        None => {
                            self.scanned = self.buf.len();
                            return;
                        }
                    }
                }
                State::Length(remaining) => {
                    let take = (*remaining).min(pending.len() as u64);
                    *remaining -= take;
                    self.ready += take as usize;
                    if *remaining == 0 {
                        self.state = State::Head;
                        self.scanned = self.ready;
                    }
                }
                State::Chunked(chunked) => match chunked.feed(pending) {
                    Ok((used, done)) => {
                        self.ready += used;
                        if done {
                            self.state = State::Head;
                            self.scanned = self.ready;
                        }
                    }
                    Err(message) => {
                        return self.reject(GatewayError::bad_request(message), ErrorFormat::Json)
                    }
                },
                State::Passthrough => self.ready = self.buf.len(),
                State::AwaitingResponse { .. } | State::Rejected => return,
            }
        }
    }

    fn reject(&mut self, err: GatewayError, format: ErrorFormat) {
        let request_id = crate::new_request_id();
        if let Some(on_reject) = &self.on_reject {
            on_reject(err.status, &err.message, &request_id);
        }
        self.error = Some(crate::error::http1_bytes(&err, format, &request_id));
        self.state = State::Rejected;
        // Nothing after the rejected head is handed to hyper.
        self.buf.truncate(self.ready);
    }
}

fn too_large(max: usize) -> GatewayError {
    GatewayError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        format!("The request head is larger than the limit of {max} bytes"),
    )
}

/// The length of the head (through its empty line) if `buf` holds a whole one. Leading
/// empty lines, which RFC 7230 §3.5 lets a server ignore, are part of the head.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let from = from.max(start).saturating_sub(3).max(start);
    let mut i = from;
    while let Some(off) = memchr::memchr(b'\n', &buf[i..]) {
        let lf = i + off;
        match buf.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// Why a head was refused, and the error format its `Accept` asked for.
type Rejection = (GatewayError, ErrorFormat);

/// Parses one head and returns the state that follows it (its body framing).
fn check_head(head: &[u8]) -> Result<State, Rejection> {
    // Slots left uninitialised: filling a hundred of them for every request wrote 3 KB.
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let status = request.parse_with_uninit_headers(head, &mut slots).map_err(|e| {
        let err = match e {
            httparse::Error::TooManyHeaders => GatewayError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("The request has more than {MAX_HEADERS} header fields"),
            ),
            httparse::Error::Version if request_line_has_three_parts(head) => {
                GatewayError::new(StatusCode::HTTP_VERSION_NOT_SUPPORTED, "Only HTTP/1.0 and HTTP/1.1 are served here")
            }
            httparse::Error::Version => GatewayError::bad_request(
                "Malformed request line: a request target must not contain spaces; percent-encode them as %20",
            ),
            other => GatewayError::bad_request(format!("Malformed request head: {other}")),
        };
        (err, ErrorFormat::Json)
    })?;
    if status.is_partial() {
        return Err((
            GatewayError::bad_request("Malformed request head"),
            ErrorFormat::Json,
        ));
    }
    // The error format is worked out only for a rejection: the common path allocates nothing.
    let reject = |message: String| {
        Err((
            GatewayError::bad_request(message),
            accept_format(request.headers),
        ))
    };
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or_default();
    // The RFC 3986 check is cheap and what it accepts the URI parser accepts too (fuzzed);
    // only a target it refuses (say, an absolute URI) is tried with the parser hyper uses.
    if method != "CONNECT"
        && crate::routing::validate_target(target).is_err()
        && target.parse::<http::Uri>().is_err()
    {
        let reason = crate::routing::validate_target(target).err().map_or_else(
            || "The request target is not a valid URI".to_string(),
            |e| e.to_string(),
        );
        return reject(reason);
    }

    let mut length: Option<&[u8]> = None;
    for h in request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for value in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            match length {
                Some(seen) if seen != value => {
                    return reject("Conflicting Content-Length values".into())
                }
                _ => length = Some(value),
            }
        }
    }
    let chunked = match transfer_coding(request.headers) {
        Ok(chunked) => chunked,
        Err(message) => return reject(message),
    };
    let connect = method == "CONNECT";
    let upgrade = connect
        || wants_switch(
            values(request.headers, "connection"),
            values(request.headers, "upgrade"),
        );
    if upgrade && (chunked || length.is_some_and(|l| l != b"0")) {
        return reject("An upgrade or CONNECT request must not have a body".into());
    }
    let after_body = |framing: State| match upgrade {
        true => State::AwaitingResponse { connect },
        false => framing,
    };
    if chunked {
        if length.is_some() {
            return reject(
                "A request must not have both Content-Length and Transfer-Encoding".into(),
            );
        }
        if request.version == Some(0) {
            return reject("HTTP/1.0 requests cannot use chunked transfer coding".into());
        }
        return Ok(State::Chunked(Chunked::default()));
    }
    let Some(length) = length else {
        return Ok(after_body(State::Length(0)));
    };
    let parsed = std::str::from_utf8(length)
        .ok()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    match parsed.and_then(|l| l.parse::<u64>().ok()) {
        Some(n) => Ok(after_body(State::Length(n))),
        None => reject(format!(
            "Invalid Content-Length \"{}\"",
            String::from_utf8_lossy(length)
        )),
    }
}

/// The error format the head's `Accept` headers ask for.
fn accept_format(headers: &[httparse::Header<'_>]) -> ErrorFormat {
    let mut accept = HeaderMap::new();
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept"))
    {
        if let Ok(value) = HeaderValue::from_bytes(h.value) {
            accept.append(http::header::ACCEPT, value);
        }
    }
    negotiate(&accept)
}

/// Whether the first line is `METHOD TARGET VERSION`: then an unparsable version is a
/// version we do not serve, not a malformed line.
fn request_line_has_three_parts(head: &[u8]) -> bool {
    let line = head
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty() && *l != b"\r")
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let parts: Vec<&str> = line.trim_end().split(' ').collect();
    parts.len() == 3 && parts[2].starts_with("HTTP/")
}

/// Whether the body is chunked; any other transfer coding is refused (RFC 7230 §3.3.3).
fn transfer_coding(headers: &[httparse::Header<'_>]) -> Result<bool, String> {
    let mut codings = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    match (codings.next(), codings.next()) {
        (None, _) => Ok(false),
        (Some(only), None) if only.eq_ignore_ascii_case(b"chunked") => Ok(true),
        _ => Err("Unsupported Transfer-Encoding: only chunked is accepted".to_string()),
    }
}

fn values<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether a request asks to switch to WebSocket (RFC 6455 §4.1): `Connection: upgrade`
/// and `websocket` among the `Upgrade` protocols.
pub(crate) fn wants_websocket<'a>(
    connection: impl Iterator<Item = &'a [u8]>,
    upgrade: impl Iterator<Item = &'a [u8]>,
) -> bool {
    has_token(connection, &[b"upgrade"]) && has_token(upgrade, &[b"websocket"])
}

/// The protocols a connection may switch to here: WebSocket (web apps and the relay), and
/// `portico-lane`, the relay's framed lanes (docs/tunnel.md "Lanes"), served in process.
const SWITCHABLE: [&[u8]; 2] = [b"websocket", b"portico-lane"];

/// Whether a request asks to switch to a protocol the gateway may switch to. Other upgrades
/// (such as `h2c`) are ignored, as RFC 7230 §6.7 lets a server do, and the request is
/// served as it is.
pub(crate) fn wants_switch<'a>(
    connection: impl Iterator<Item = &'a [u8]>,
    upgrade: impl Iterator<Item = &'a [u8]>,
) -> bool {
    has_token(connection, &[b"upgrade"]) && has_token(upgrade, &SWITCHABLE)
}

/// Whether a comma-separated header's values hold one of `tokens`, in any case.
fn has_token<'a>(mut values: impl Iterator<Item = &'a [u8]>, tokens: &[&[u8]]) -> bool {
    values.any(|v| {
        v.split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|t| tokens.iter().any(|token| t.eq_ignore_ascii_case(token)))
    })
}

impl<IO> HeadGuard<IO> {
    /// After an upgrade request, the start of the response decides: `101` (or a `2xx` to
    /// CONNECT) hands the connection over; anything else means more HTTP/1 requests,
    /// which are checked like the first.
    fn see_response(&mut self, data: &[u8]) {
        let State::AwaitingResponse { connect } = self.state else {
            return;
        };
        if data.is_empty() {
            return;
        }
        let status = data.get(9..12).unwrap_or_default();
        let switched = status == b"101" || (connect && status.first() == Some(&b'2'));
        self.state = if switched {
            State::Passthrough
        } else {
            State::Head
        };
        self.scanned = self.ready;
        self.process();
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
    }
}

impl<IO: AsyncRead + Unpin> HeadGuard<IO> {
    /// Reads at most the `remaining` bytes of a body with a declared length straight into
    /// `out`; the bytes after it are the next request's head, for the guard to check.
    fn poll_read_body(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        remaining: u64,
    ) -> Poll<io::Result<()>> {
        let before = out.filled().len();
        if out.remaining() as u64 <= remaining {
            ready!(Pin::new(&mut self.io).poll_read(cx, out))?;
        } else {
            // Reading into initialised memory keeps this crate free of `unsafe`; the
            // window is smaller than `out`, so this zeroes less than a read moves.
            let limit = usize::try_from(remaining).unwrap_or(usize::MAX);
            let mut window = ReadBuf::new(out.initialize_unfilled_to(limit));
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut window))?;
            let n = window.filled().len();
            out.advance(n);
        }
        let n = (out.filled().len() - before) as u64;
        let left = remaining - n;
        self.state = if left == 0 {
            State::Head
        } else {
            State::Length(left)
        };
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadGuard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.ready -= n;
                this.scanned = this.scanned.saturating_sub(n);
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Rejected {
                return Poll::Ready(Ok(()));
            }
            if let State::AwaitingResponse { .. } = this.state {
                // Nothing is read meanwhile: a client cannot pile bytes up here.
                this.waiting = Some(cx.waker().clone());
                return Poll::Pending;
            }
            // Large bodies and upgraded streams go straight into hyper's buffer.
            if this.buf.is_empty() {
                if this.state == State::Passthrough && this.buf.capacity() > 0 {
                    // An upgraded stream never needs the head buffer again; a WebSocket
                    // would otherwise hold it for its whole life.
                    this.buf = BytesMut::new();
                }
                match this.state {
                    State::Passthrough => return Pin::new(&mut this.io).poll_read(cx, out),
                    State::Length(n) if n > 0 => return this.poll_read_body(cx, out, n),
                    _ => {}
                }
            }
            // Heads (and whatever follows them in the same read) go into the guard's buffer.
            if this.buf.capacity() - this.buf.len() < MIN_READ {
                this.buf.reserve(READ_SIZE);
            }
            let read =
                match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf) {
                    Poll::Pending => return this.poll_head_deadline(cx),
                    Poll::Ready(read) => read?,
                };
            if read == 0 {
                // End of stream: whatever is buffered (an incomplete head or body) goes to
                // hyper, which reports the incomplete message its own way.
                this.ready = this.buf.len();
                this.state = State::Passthrough;
                if this.ready == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.process();
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadGuard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.see_response(data);
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            self.see_response(first);
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while let Some(error) = &mut this.error {
            if error.is_empty() {
                this.error = None;
                break;
            }
            let n = ready!(Pin::new(&mut this.io).poll_write(cx, error))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            error.advance(n);
        }
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_end_at_the_first_empty_line() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 0),
            Some(27)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\n", 0), Some(24));
        assert_eq!(find_head_end(b"\r\nGET / HTTP/1.1\r\n\r\n", 0), Some(20));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
    }

    #[test]
    fn heads_with_ambiguous_framing_are_refused() {
        let both = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(check_head(both).is_err());
        let two = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(check_head(two).is_err());
        let gzip = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert!(check_head(gzip).is_err());
        let ok = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(check_head(ok), Ok(State::Length(3)));
        let ws =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(
            check_head(ws),
            Ok(State::AwaitingResponse { connect: false })
        );
        let h2c = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(check_head(h2c), Ok(State::Length(0)));
        let ws_body = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\n";
        assert!(check_head(ws_body).is_err());
        let empty_coding = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n";
        assert!(check_head(empty_coding).is_err());
    }
}
