//! Keep-alive connections to plain-HTTP backends, each driven by the task of the request
//! that uses it.
//!
//! A general-purpose pooled client runs every backend connection as a task of its own, so
//! a proxied request hops from the client connection's task to the backend connection's
//! task and back, and on a multi-threaded runtime every hop can wake another worker thread.
//! Here a request takes an idle connection (or opens one) and polls it itself: while it
//! waits for the response head, then from the response body while the client connection
//! writes that body out. Once the response has been read to its end the connection goes
//! back to the idle list, for the next request to any client. A request and its backend
//! exchange stay in one task; only the sockets' readiness wakes it.
//!
//! WebSocket upgrades and HTTPS backends keep to the pooled client
//! ([`crate::client::HttpClient`]): an upgraded connection outlives its request, and TLS
//! session handling is that client's job.

use crate::body::{Body, BoxError};
use crate::client::Resolver;
use crate::held_wakes::HeldWakes;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Idle connections kept per backend; more are closed when their response ends.
const MAX_IDLE_PER_BACKEND: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle connections are checked for age and for a close by the backend.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Why a request found no answer.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened: refused, unreachable, or not accepted in time.
    Connect(BoxError),
    /// The connection failed before a complete response head arrived.
    Exchange(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect to the backend: {e}"),
            SendError::Exchange(e) => write!(f, "the backend exchange failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(e.as_ref()),
            SendError::Exchange(e) => Some(e),
        }
    }
}

/// HTTP/1.1 connections to plain-HTTP backends, by backend authority.
pub struct BackendPool {
    /// Idle connections by the runtime they were opened on: the shared runtime's first,
    /// then one list per core runtime ([`crate::cores`]). A request takes its connection
    /// from its own runtime's list, so that the backend socket's readiness wakes the
    /// thread the request runs on.
    idle: Vec<Arc<IdleConnections>>,
    connector: HttpConnector<Resolver>,
}

impl BackendPool {
    pub fn new(connector: HttpConnector<Resolver>) -> BackendPool {
        BackendPool {
            idle: (0..=crate::cores::count())
                .map(|_| Arc::new(IdleConnections::default()))
                .collect(),
            connector,
        }
    }

    /// The idle connections of the runtime the calling task runs on (a core's index is
    /// below [`crate::cores::count`], fixed for the process).
    fn idle_here(&self) -> &Arc<IdleConnections> {
        &self.idle[crate::cores::current().map_or(0, |core| core + 1)]
    }

    /// Sends `request`, whose target is an absolute `http://` URI, and answers with the
    /// backend's response; its body drives the connection until it has been read.
    /// A request that an idle connection could not even start (the backend had closed it)
    /// is sent again on another one; nothing of it had reached the backend.
    ///
    /// Not an `async fn`: such a function's future keeps every argument twice, and this
    /// one is allocated for every request. Under about a kilobyte it comes from the
    /// allocator's per-thread cache; over it, it cost several times as much.
    pub fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, SendError>> + Send + '_ {
        // The target's pieces are moved, not cloned: a clone of a path made for this
        // request would allocate.
        let (mut parts, body) = request.into_parts();
        let mut target = std::mem::take(&mut parts.uri).into_parts();
        let authority = target.authority.take();
        parts.uri = Uri::from(
            target
                .path_and_query
                .take()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        let mut request = Request::from_parts(parts, body);
        async move {
            let authority = authority
                .ok_or_else(|| SendError::Connect("the backend URI has no authority".into()))?;
            loop {
                let idle = self.idle_here();
                let (connection, reused) = match idle.take(authority.as_str()) {
                    Some(connection) => (connection, true),
                    None => (self.connect(&authority).await?, false),
                };
                match exchange(connection, request).await {
                    Ok((response, connection)) => {
                        let idle = idle.clone();
                        return Ok(response.map(|body| {
                            crate::body::boxed(DrivenBody {
                                body,
                                connection: Some(connection),
                                home: Some((idle, authority)),
                            })
                        }));
                    }
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if reused => request = unsent,
                        _ => return Err(SendError::Exchange(e.into_error())),
                    },
                }
            }
        }
    }

    async fn connect(&self, authority: &Authority) -> Result<Connection, SendError> {
        let target = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = self
            .connector
            .clone()
            .oneshot(target)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let (sender, driver) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Exchange)?;
        Ok(Connection {
            sender,
            driver: Box::pin(driver),
            wakes: HeldWakes::new(),
        })
    }
}

/// One HTTP/1.1 connection: the handle that sends requests, and the state machine that
/// must be polled for anything to happen on the socket.
struct Connection {
    sender: http1::SendRequest<Body>,
    driver: Pin<Box<http1::Connection<TokioIo<TcpStream>, Body>>>,
    /// The waker the connection and what it fills are polled with.
    wakes: HeldWakes,
}

impl Connection {
    /// Polls the connection once without waiting: true while it can take another request
    /// (it has not been closed, and nothing of the previous exchange is pending).
    fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.driver.as_mut().poll(&mut cx) {
            Poll::Ready(_) => false,
            Poll::Pending => self.sender.is_ready(),
        }
    }
}

/// Sends the request and drives the connection until the response head is in. The
/// request is handed to the connection before the future starts (see
/// [`BackendPool::send`] for why this is not an `async fn`).
fn exchange(
    mut connection: Connection,
    request: Request<Body>,
) -> impl Future<
    Output = Result<
        (Response<Incoming>, Connection),
        hyper::client::conn::TrySendError<Request<Body>>,
    >,
> + Send {
    let response = connection.sender.try_send_request(request);
    async move {
        let mut response = pin!(response);
        let mut finished = false;
        let driver = &mut connection.driver;
        let response = poll_fn(|cx| {
            connection.wakes.poll(cx, |cx| {
                if !finished {
                    // A finished connection has handed its outcome to the response already.
                    finished = driver.as_mut().poll(cx).is_ready();
                }
                response.as_mut().poll(cx)
            })
        })
        .await?;
        Ok((response, connection))
    }
}

/// A backend's response body that drives its connection while it is read, and hands the
/// connection back for reuse once it has been read to its end. Dropped earlier (the client
/// went away), it closes the connection, which aborts the backend's exchange.
struct DrivenBody {
    body: Incoming,
    connection: Option<Connection>,
    home: Option<(Arc<IdleConnections>, Authority)>,
}

impl DrivenBody {
    /// Hands the connection back to the idle list if it can take another request. After
    /// an exchange that ended cleanly the connection already says so (an atomic load); one
    /// that does not is polled to find out. A connection still sending the request's body
    /// (the backend answered early) or closing is dropped here, which ends the client's
    /// unread body at once rather than when the idle list is next swept.
    fn recycle(&mut self) {
        if let (Some(mut connection), Some((idle, authority))) =
            (self.connection.take(), self.home.take())
        {
            if connection.sender.is_ready() || connection.is_reusable() {
                idle.put(authority.as_str(), connection);
            }
        }
    }
}

impl http_body::Body for DrivenBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = match this.connection.as_mut() {
            Some(connection) => {
                let (driver, body) = (&mut connection.driver, &mut this.body);
                let mut closed = false;
                let frame = connection.wakes.poll(cx, |cx| {
                    closed = closed || driver.as_mut().poll(cx).is_ready();
                    Pin::new(&mut *body).poll_frame(cx)
                });
                if closed {
                    // Closed or failed: what it read is in the body; it is not reused.
                    this.connection = None;
                }
                ready!(frame)
            }
            None => ready!(Pin::new(&mut this.body).poll_frame(cx)),
        };
        if frame.is_none() {
            this.recycle();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for DrivenBody {
    fn drop(&mut self) {
        // A body known to be empty (HEAD, 204, 304, `Content-Length: 0`) is dropped unread.
        if self.body.is_end_stream() {
            self.recycle();
        }
    }
}

/// Connections waiting for their next request, most recently used last. Keyed by the
/// authority's text as the routing table wrote it: `Authority`'s own hash goes byte by
/// byte to ignore case, which showed in per-request profiles, and hashed with foldhash
/// like the routing table's maps.
#[derive(Default)]
struct IdleConnections {
    by_backend: Mutex<IdleByBackend>,
    sweeping: AtomicBool,
}

type IdleByBackend = foldhash::HashMap<Box<str>, Vec<Idle>>;

struct Idle {
    connection: Connection,
    since: Instant,
}

impl Idle {
    fn is_usable(&mut self) -> bool {
        self.since.elapsed() < IDLE_TIMEOUT && self.connection.is_reusable()
    }
}

impl IdleConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleByBackend> {
        self.by_backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used connection to `authority` that is still open.
    ///
    /// The look at a connection is a poll with a waker that does nothing. Besides finding
    /// a connection the backend closed, it takes the waker of the task that used the
    /// connection last out of it: handing the connection a request would otherwise wake
    /// that task, most often another client connection's, for nothing. Without the look,
    /// a small request took as many instructions (`bench/instructions`): what the poll
    /// cost went into those wake-ups.
    fn take(&self, authority: &str) -> Option<Connection> {
        loop {
            let mut entry = self.lock().get_mut(authority)?.pop()?;
            // Checked outside the lock; a stale one is dropped (closed) here too.
            if entry.is_usable() {
                return Some(entry.connection);
            }
        }
    }

    fn put(self: &Arc<Self>, authority: &str, connection: Connection) {
        let entry = Idle {
            connection,
            since: Instant::now(),
        };
        {
            let mut by_backend = self.lock();
            match by_backend.get_mut(authority) {
                Some(idle) if idle.len() >= MAX_IDLE_PER_BACKEND => return,
                Some(idle) => idle.push(entry),
                None => {
                    by_backend.insert(authority.into(), vec![entry]);
                }
            }
        }
        self.start_sweeping();
    }

    /// Closes, every [`SWEEP_INTERVAL`], the idle connections that are too old or that
    /// the backend has closed, so that no socket lingers after traffic stops. The sweep
    /// ends with the pool.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.sweep();
            }
        });
    }

    fn sweep(&self) {
        let mut stale = Vec::new();
        {
            let mut by_backend = self.lock();
            for idle in by_backend.values_mut() {
                for mut entry in std::mem::take(idle) {
                    if entry.is_usable() {
                        idle.push(entry);
                    } else {
                        stale.push(entry);
                    }
                }
            }
            by_backend.retain(|_, idle| !idle.is_empty());
        }
        // Closed outside the lock.
        drop(stale);
    }
}

/// True when a connect error is a timeout, anywhere along its chain of causes.
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.to_string().contains("timed out")
        {
            return true;
        }
        cause = e.source();
    }
    false
}
