//! The identity admin API inside `portico serve`: the identity crate's router as the
//! in-process target of the built-in API `identity`, its caller taken from the principal
//! the gateway verified (a user's role travels as the scope `role:{role}`; a client
//! credentials token has none, and the API refuses it).

use futures_util::FutureExt;
use portico_gateway::body::{boxed, Body};
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_identity::http::{admin_api, AdminCaller};
use portico_identity::Identity;
use std::sync::Arc;
use tower::ServiceExt;

pub fn service(identity: Identity) -> Arc<dyn InProcess> {
    let router = admin_api(identity);
    from_tower(tower::service_fn(
        move |mut request: http::Request<Body>| {
            let caller = request
                .extensions()
                .get::<RequestContext>()
                .and_then(|context| context.principal.as_ref())
                .map(|principal| AdminCaller {
                    tenant: principal.tenant.clone(),
                    subject: principal.subject.clone(),
                    role: principal.role().unwrap_or_default().to_string(),
                });
            if let Some(caller) = caller {
                request.extensions_mut().insert(caller);
            }
            // A combinator rather than an async block: the compiler cannot prove such a block
            // `Send` across the router's future (the boxed body error's elided lifetime).
            router
                .clone()
                .oneshot(request)
                .map(|answer| answer.map(|response| response.map(boxed)))
        },
    ))
}
