//! Clientless browser access (RS-10) as the in-process service `clientless`: the gateway
//! sends it every request of a `{tenant}-remote-{connection id}` host, authenticated by a
//! session of the host's tenant; this reads who asks for which session from the request
//! context and hands the request to the relay's clientless proxy. A WebSocket opened in a
//! Portico session closes when that session ends, as on every web app (GW-23).

use crate::identity::IdentityAuthenticator;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use portico_gateway::auth::Authenticator;
use portico_gateway::body::{full, Body};
use portico_gateway::routing::HostKind;
use portico_gateway::{InProcess, RequestContext, CLIENTLESS_SERVICE};
use portico_identity::Identity;
use portico_relay::api::system_clock;
use portico_relay::live::clientless::{Clientless, WebRequest};
use portico_relay::live::{ControlHub, DEFAULT_RECHECK};
use portico_store::Store;
use std::sync::Arc;

/// The service's name among the in-process services.
pub const SERVICE: &str = CLIENTLESS_SERVICE;

struct Service {
    clientless: Clientless,
    /// Tells when a browser's Portico session ends, which closes its WebSockets here too.
    sessions: Arc<IdentityAuthenticator>,
}

/// The clientless service over the hub's relay. Call inside the runtime.
pub fn service(store: Store, hub: &ControlHub, identity: Identity) -> Arc<dyn InProcess> {
    Arc::new(Service {
        clientless: Clientless::new(store, hub, system_clock(), DEFAULT_RECHECK),
        sessions: Arc::new(IdentityAuthenticator::new(identity)),
    })
}

impl InProcess for Service {
    fn call(&self, request: Request<Body>) -> BoxFuture<'static, Response<Body>> {
        let clientless = self.clientless.clone();
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let Some(context) = request.extensions().get::<RequestContext>().cloned() else {
                return refusal(StatusCode::INTERNAL_SERVER_ERROR, "no request context");
            };
            let HostKind::WebApp {
                provider: Some(session),
                ..
            } = &context.host.kind
            else {
                return refusal(StatusCode::NOT_FOUND, "not a device web interface host");
            };
            // The gateway found the session in the host's tenant: the principal's tenant.
            let Some(principal) = &context.principal else {
                return refusal(StatusCode::UNAUTHORIZED, "sign in first");
            };
            let scheme = if context.tls { "https" } else { "http" };
            let own_origin = format!("{scheme}://{}", context.original_host);
            let web = WebRequest {
                tenant: &principal.tenant,
                user: &principal.subject,
                session,
                own_origin: &own_origin,
            };
            // Only a WebSocket outlives its request: only then is the session watched.
            let signed_out = match &context.session {
                Some(id) if request.headers().contains_key(http::header::UPGRADE) => {
                    Some(sessions.session_ended(id.expose()))
                }
                _ => None,
            };
            clientless.serve(web, request, signed_out).await
        })
    }
}

fn refusal(status: StatusCode, why: &'static str) -> Response<Body> {
    let mut response = Response::new(full(format!("{why}\n")));
    *response.status_mut() = status;
    response
}
