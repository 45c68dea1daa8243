//! The listening side of the gateway: the accept loop with its connection limit and TLS
//! handshake, each connection served in the protocol it negotiated (HTTP/1.1 behind the
//! head guard, or HTTP/2) with the idle clock and the lingering close around its IO, and
//! the shutdown drain (GW-13, GW-24).

use super::{ConnInfo, Gateway};
use crate::body::{boxed, Body};
use crate::cores;
use crate::error::{render, GatewayError};
use crate::head_guard::HeadGuard;
use crate::limits::idle::{IdleClock, IdleIo, ResponseWait};
use crate::limits::linger::LingeringClose;
use crate::overload;
use crate::proxy::strip_hop_by_hop;
use crate::woken::race_woken;
use futures_util::future::Either;
use http::{Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use portico_fair::bulk::MovableTcp;
use portico_fair::Fair;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Unsent bytes an accepted connection may hold in the kernel (`TCP_NOTSENT_LOWAT`).
const NOT_SENT_LOW_WATER: u32 = 128 * 1024;

/// TCP keep-alive on accepted connections (DC-3): probes after a minute of silence, then
/// every 10 s. A device's long poll sits idle between notifications; the probes keep NAT
/// and firewall state alive, and find a peer that vanished without a FIN.
fn keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10))
        .with_retries(6)
}

/// An accepted connection on its way to the task that serves it.
enum Accepted {
    /// Registered with this runtime, which serves it.
    Here(TcpStream),
    /// To be registered with the runtime of the core that serves it, counted there.
    ForCore(std::net::TcpStream, cores::OnCore),
}

impl Accepted {
    /// The connection registered with the runtime of the calling task.
    fn register(self) -> std::io::Result<(TcpStream, Option<cores::OnCore>)> {
        match self {
            Accepted::Here(stream) => Ok((stream, None)),
            Accepted::ForCore(stream, on_core) => Ok((TcpStream::from_std(stream)?, Some(on_core))),
        }
    }
}

impl Gateway {
    /// Accepts connections on `listener` until `shutdown`, then stops listening and lets
    /// the requests in flight finish and closes the gateway's WebSockets with 1001, for
    /// at most the drain timeout (GW-24): idle keep-alive connections close at once,
    /// HTTP/2 clients get a GOAWAY, and whatever is still open at the deadline is closed.
    /// The WebSockets are the whole gateway's: one listener's shutdown closes all.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: CancellationToken,
    ) {
        let tracker = TaskTracker::new();
        let stop = Stop {
            graceful: shutdown.clone(),
            deadline: CancellationToken::new(),
        };
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, client) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // Bytes beyond this wait in user space, where streams multiplexed on the
            // connection (HTTP/2, the relay's tunnels) take turns, rather than in one line in
            // the kernel's autotuned send buffer. Only latency depends on it.
            let socket = socket2::SockRef::from(&stream);
            let _ = socket.set_tcp_notsent_lowat(NOT_SENT_LOW_WATER);
            let _ = socket.set_tcp_keepalive(&keepalive());
            // The connection is served on a core's runtime when there is one: taken off
            // this runtime's I/O driver here, put on the core's in its task.
            let (stream, core) = match self.config().per_core_runtimes.then(cores::pick).flatten() {
                Some((core, on_core)) => match stream.into_std() {
                    Ok(stream) => (Accepted::ForCore(stream, on_core), Some(core)),
                    Err(e) => {
                        tracing::debug!(client = %client, error = %e, "cannot hand the connection to a core");
                        continue;
                    }
                },
                _ => (Accepted::Here(stream), None),
            };
            // The permit is held for the connection's life. Over the limit, a connection
            // is answered 503; past a small number of such answers in flight, it is closed.
            let permit = self.inner.connections.clone().try_acquire_owned().ok();
            let refusal = match permit {
                Some(_) => None,
                None => {
                    self.inner.metrics.connection_rejected();
                    match self.inner.refusals.clone().try_acquire_owned() {
                        Ok(refusal) => Some(refusal),
                        Err(_) => continue,
                    }
                }
            };
            let gateway = self.clone();
            let tls = tls.clone();
            let stop = stop.clone();
            let serve = async move {
                let (stream, _on_core) = match stream.register() {
                    Ok(registered) => registered,
                    Err(e) => {
                        tracing::debug!(client = %client, error = %e, "cannot register the connection on its core");
                        return;
                    }
                };
                // A relayed stream that turns bulk takes its connection to the bulk runtime.
                let stream = MovableTcp::new(stream);
                let _permit = permit;
                let refused = refusal.is_some();
                gateway.inner.metrics.connection_opened();
                let conn = ConnInfo::new(client, tls.is_some());
                // The handshake and the HTTP connection are large futures (about 12 KB);
                // boxed, they are freed when the connection ends or is upgraded, and a
                // WebSocket's task keeps only its idle watch.
                let serving = Box::pin(async {
                    match tls {
                        None if refused => {
                            overload::refuse(stream, gateway.config().max_connections).await;
                            None
                        }
                        None => {
                            gateway
                                .serve_connection(stream, conn, Protocol::Http1, stop)
                                .await
                        }
                        Some(acceptor) => {
                            let timeout = gateway.config().tls_handshake_timeout;
                            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    let protocol = Protocol::negotiated(&stream);
                                    if refused {
                                        overload::refuse_as(
                                            stream,
                                            protocol == Protocol::Http2,
                                            gateway.config().max_connections,
                                        )
                                        .await;
                                        None
                                    } else {
                                        gateway.serve_connection(stream, conn, protocol, stop).await
                                    }
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(client = %client, error = %e, "TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(client = %client, "TLS handshake timed out");
                                    None
                                }
                            }
                        }
                    }
                });
                if let Some(upgraded) = serving.await {
                    // Until the relay drops the IO, the connection holds its permit (GW-13)
                    // and counts as open.
                    gateway.watch_idle(upgraded).await;
                }
                drop(refusal);
                gateway.inner.metrics.connection_closed();
            };
            match core {
                Some(core) => tracker.spawn_on(serve, &core),
                None => tracker.spawn(serve),
            };
        }
        // New connections are refused by the system from here on, not queued unanswered.
        drop(listener);
        tracker.close();
        let websockets = &self.inner.websockets;
        websockets.close_all();
        let drained = async {
            tracker.wait().await;
            websockets.wait().await;
        };
        if tokio::time::timeout(self.config().drain_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                open = tracker.len(),
                websockets = websockets.len(),
                "drain deadline passed; closing the remaining connections"
            );
            stop.deadline.cancel();
            // Closing is immediate; the bound only guards against a connection task that
            // does not notice.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tracker.wait()).await;
        }
    }

    /// Serves one client connection in the protocol it negotiated. An upgraded connection
    /// lives on in its relay: its idle clock is returned, to be watched until the relay ends.
    async fn serve_connection<IO>(
        &self,
        io: IO,
        conn: ConnInfo,
        protocol: Protocol,
        stop: Stop,
    ) -> Option<Arc<IdleClock>>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let client = conn.client;
        let clock = IdleClock::new();
        let io = client_io(io, &clock);
        let served = async {
            match protocol {
                Protocol::Http1 => self.serve_http1(io, conn, &clock, &stop).await,
                Protocol::Http2 => self.serve_http2(io, conn, &clock, &stop).await,
            }
        };
        let idle = self.watch_idle(clock.clone());
        // The connection (with the IO, unless it was upgraded) is gone after this.
        let result = {
            tokio::pin!(served, idle);
            race_woken(served, idle).await
        };
        let result = match result {
            Either::Left(result) => result,
            Either::Right(()) => {
                tracing::debug!(client = %client, "idle connection closed");
                return None;
            }
        };
        if let Err(e) = result {
            tracing::debug!(client = %client, error = %e, "connection ended with an error");
        }
        // An upgraded connection lives on in its relay with the same IO, which holds the
        // clock: it keeps its idle timeout, which fails the IO when it runs out.
        (Arc::strong_count(&clock) > 1 && !clock.is_expired()).then_some(clock)
    }

    /// Resolves once the connection of `clock` has been idle for the idle timeout in
    /// force (GW-13).
    fn watch_idle(&self, clock: Arc<IdleClock>) -> impl std::future::Future<Output = ()> {
        let gateway = self.clone();
        crate::limits::idle::watch(clock, move || gateway.config().idle_timeout)
    }

    async fn serve_http1<IO>(
        &self,
        io: IO,
        conn: ConnInfo,
        clock: &Arc<IdleClock>,
        stop: &Stop,
    ) -> Result<(), hyper::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let metrics_gateway = self.clone();
        let client = conn.client;
        let on_reject = Box::new(move |status: StatusCode, message: &str, request_id: &str| {
            metrics_gateway.inner.metrics.rejected_head(status.as_u16());
            tracing::info!(target: "portico::access", request_id, client = %client.ip(), status = status.as_u16(), reason = message, "request head rejected");
        });
        let config = self.config();
        let guard = HeadGuard::new(io, config.max_header_size, Some(on_reject))
            .with_head_timeout(config.header_read_timeout);
        let shared = ConnShared::new(self, conn, clock);
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let shared = shared.clone();
            // Started before the future, which then holds the request once, not twice.
            let (in_flight, request) = InFlight::start(request, &shared.clock);
            async move {
                let response = shared.gateway.handle(request, &shared.conn).await;
                in_flight.answered(&response, &shared.clock);
                Ok::<_, Infallible>(response)
            }
        });
        let mut builder = http1::Builder::new();
        // The head guard times heads from their first byte (hyper's header timeout would
        // also cut idle keep-alive connections, whose limit is the idle timeout).
        builder
            .half_close(true)
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        let connection = builder
            .serve_connection(TokioIo::new(guard), service)
            .with_upgrades();
        stop.run(connection, |c| c.graceful_shutdown()).await
    }

    /// HTTP/2: every stream is a request through [`Gateway::handle`], after the checks
    /// the head guard makes for HTTP/1.1 (see [`crate::http2`]).
    async fn serve_http2<IO>(
        &self,
        io: IO,
        conn: ConnInfo,
        clock: &Arc<IdleClock>,
        stop: &Stop,
    ) -> Result<(), hyper::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let max_header_size = self.config().max_header_size;
        let shared = ConnShared::new(self, conn, clock);
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let shared = shared.clone();
            let refusal = shared
                .gateway
                .refuse_large_head(&request, max_header_size, &shared.conn);
            let admitted = match refusal {
                Some(refusal) => Err(refusal),
                None => Ok(InFlight::start(request, &shared.clock)),
            };
            async move {
                let mut response = match admitted {
                    Err(refusal) => refusal,
                    Ok((in_flight, request)) => {
                        let response = shared.gateway.handle(request, &shared.conn).await;
                        in_flight.answered(&response, &shared.clock);
                        response
                    }
                };
                // Connection-specific headers do not exist in HTTP/2 (RFC 9113 §8.2.2).
                strip_hop_by_hop(response.headers_mut(), false);
                Ok::<_, Infallible>(response)
            }
        });
        let connection =
            crate::http2::builder(max_header_size).serve_connection(TokioIo::new(io), service);
        stop.run(connection, |c| c.graceful_shutdown()).await
    }

    /// The 431 the head guard gives HTTP/1.1 requests, for an HTTP/2 request whose header
    /// list is over `max_header_size`.
    fn refuse_large_head<B>(
        &self,
        request: &Request<B>,
        max_header_size: usize,
        conn: &ConnInfo,
    ) -> Option<Response<Body>> {
        let size = crate::http2::header_list_size(request);
        if size <= max_header_size {
            return None;
        }
        let request_id = crate::new_request_id();
        let message = format!("The request header fields are larger than {max_header_size} bytes");
        self.inner
            .metrics
            .rejected_head(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.as_u16());
        tracing::info!(target: "portico::access", request_id, client = %conn.client.ip(), status = 431, reason = %message, "request head rejected");
        let error = GatewayError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message);
        Some(render(&error, request.headers(), &request_id))
    }
}

/// The HTTP version a connection speaks: HTTP/2 where the client chose `h2` by ALPN,
/// HTTP/1.x otherwise (the plain listener, and TLS clients without ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    fn negotiated<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> Protocol {
        match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }
}

/// How a connection is stopped at shutdown: first gracefully, then, at the drain
/// deadline, by closing it.
#[derive(Clone)]
struct Stop {
    graceful: CancellationToken,
    deadline: CancellationToken,
}

impl Stop {
    /// Drives `connection` to its end. On shutdown it is asked to finish gracefully
    /// (`graceful_shutdown`: idle HTTP/1.1 connections close at once, HTTP/2 sends GOAWAY);
    /// at the drain deadline it is dropped, which closes it.
    async fn run<C>(
        &self,
        connection: C,
        graceful_shutdown: impl FnOnce(Pin<&mut C>),
    ) -> Result<(), hyper::Error>
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let (graceful, deadline) = (self.graceful.cancelled(), self.deadline.cancelled());
        tokio::pin!(connection, graceful, deadline);
        if let Either::Left(result) = race_woken(connection.as_mut(), graceful).await {
            return result;
        }
        graceful_shutdown(connection.as_mut());
        match race_woken(connection, deadline).await {
            Either::Left(result) => result,
            Either::Right(()) => Ok(()),
        }
    }
}

/// A client connection under the gateway's HTTP servers. The WebSocket relay takes
/// upgraded connections of exactly this type back out of hyper (`websocket/sides.rs`), so
/// it is named once, here.
pub(crate) type ClientIo<IO> = LingeringClose<IdleIo<Fair<IO>>>;

/// The idle timeout, the lingering close and fair turns (a WebSocket or tunnel carrying
/// bulk bytes yields every `TURN_BYTES`, so that interactive ones on the same worker are
/// not kept waiting) concern the whole connection, so they wrap it for both protocols.
pub(crate) fn client_io<IO>(io: IO, clock: &Arc<IdleClock>) -> ClientIo<IO> {
    LingeringClose::new(IdleIo::new(Fair::new(io), clock.clone()))
        .plain_after_upgrade(clock.clone())
}

/// A request of a client connection in flight: the connection's idle clock stands still
/// while the response head is awaited. The service futures of both protocols await
/// [`Gateway::handle`] between `start` and `answered` themselves, not through an `async fn`
/// around it: each level of nested futures is one more copy of the request's whole state
/// as it starts. `start` runs before the future is made, so that the future holds the
/// request once.
/// What the requests of one connection share: the gateway, the connection's idle clock
/// and what is known of the client. One reference per request, counted on the core that
/// serves the connection. The gateway's own count is shared by every core: a clone of it
/// for each request made both cores write the same cache line, back and forth, twice per
/// request.
struct ConnShared {
    gateway: Gateway,
    clock: Arc<IdleClock>,
    conn: ConnInfo,
}

impl ConnShared {
    fn new(gateway: &Gateway, conn: ConnInfo, clock: &Arc<IdleClock>) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            gateway: gateway.clone(),
            clock: clock.clone(),
            conn,
        })
    }
}

struct InFlight {
    wait: ResponseWait,
    version: http::Version,
}

impl InFlight {
    fn start(
        request: Request<hyper::body::Incoming>,
        clock: &Arc<IdleClock>,
    ) -> (InFlight, Request<Body>) {
        use http_body::Body as _;
        let body_empty = request.body().is_end_stream();
        let wait = clock.request_started(body_empty);
        // An empty body is replaced by one that needs no allocation and no watch.
        let mut request = request.map(|body| {
            if body_empty {
                crate::body::empty()
            } else {
                boxed(wait.watch_body(body))
            }
        });
        let version = request.version();
        if version == http::Version::HTTP_2 {
            crate::http2::join_cookies(request.headers_mut());
        }
        (InFlight { wait, version }, request)
    }

    /// The response head is ready: the clock runs again, and after a WebSocket upgrade it
    /// times the relay.
    fn answered(self, response: &Response<Body>, clock: &IdleClock) {
        if self.version == http::Version::HTTP_11
            && response.status() == StatusCode::SWITCHING_PROTOCOLS
        {
            clock.mark_upgraded();
        }
        drop(self.wait);
    }
}
