//! In-process services: the targets that live inside `portico serve` (the admin API now;
//! identity, console, device API and relay later). They plug into the gateway through
//! this one trait, and the binary wires them by name: a registration whose backend is
//! `internal:NAME` is answered by the service registered under `NAME`. The gateway
//! crate depends on none of them.

use crate::auth::{Principal, SessionId};
use crate::body::{boxed, Body, BoxError};
use crate::routing::ParsedHost;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// What the gateway knows about a request, handed to in-process services as a request
/// extension. The request itself looks as it would to a backend: its URI is the path
/// the backend would receive (for an API, the endpoint after `/api/{name}/v{n}`), and it
/// carries the `X-Forwarded-*` and `X-Request-Id` headers.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client: SocketAddr,
    pub tls: bool,
    pub host: ParsedHost,
    /// The original `Host` header, e.g. `demo-hello.eu1.portico.localhost:8080`.
    pub original_host: String,
    /// The path and query as the client sent them.
    pub original_target: String,
    /// The caller's tenant where the host names one (web-app hosts).
    pub tenant: Option<String>,
    /// The caller's live session, when the request carries one (of the host's tenant on
    /// web-app hosts). Set on the core identity paths and where a session authorised the
    /// request.
    pub session: Option<SessionId>,
    /// Who the caller is, when known: the session's user or the bearer token's subject.
    pub principal: Option<Principal>,
}

/// A target inside the process. Implemented for any tower service (an axum `Router`,
/// for one) through [`from_tower`].
pub trait InProcess: Send + Sync + 'static {
    fn call(&self, request: Request<Body>) -> BoxFuture<'static, Response<Body>>;
}

/// The in-process services by name.
pub type Services = HashMap<String, Arc<dyn InProcess>>;

/// Any tower service, its responses' bodies boxed, behind one concrete type.
struct Tower(BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>);

impl InProcess for Tower {
    fn call(&self, request: Request<Body>) -> BoxFuture<'static, Response<Body>> {
        Box::pin(self.0.clone().oneshot(request).map(|result| match result {
            Ok(response) => response,
            Err(never) => match never {},
        }))
    }
}

/// Wraps a tower service (e.g. an axum `Router`) as an in-process target.
pub fn from_tower<S, B>(service: S) -> Arc<dyn InProcess>
where
    S: tower::Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let boxed_bodies = service.map_response(|response: Response<B>| response.map(boxed));
    Arc::new(Tower(BoxCloneSyncService::new(boxed_bodies)))
}
