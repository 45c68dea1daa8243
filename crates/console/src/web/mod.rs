//! The web console (SPEC RS-6, RS-8, GW-6): server-rendered pages on
//! `{tenant}-console.{region}.{domain}`, behind the session login. Pages read through the
//! in-process APIs as the signed-in caller ([`apis`]); actions are sent by the page
//! JavaScript to the same APIs on the console's own host (`/api/remoteservices/v1/…`,
//! `/api/identity/v1/…`), so every action is also an API call with the API's own rules.
//! The platform operator's console (`management-console.…`) has the Registry page only,
//! whose actions go to the registry API in-process ([`operator`]).

mod admin;
mod apis;
mod assets;
mod audit;
mod connections;
mod device;
mod devices;
mod error;
mod layout;
mod network_page;
mod operator;
mod protocol_hub;
mod registry;
mod registry_admin;
mod views;

use crate::network::AllowList;
use axum::extract::FromRequestParts;
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::request::Parts;
use portico_gateway::{InProcess, RequestContext};
use portico_store::Store;
use std::sync::Arc;

pub use error::PageError;
pub use layout::{Role, Viewer};

/// What the console needs from the process it runs in.
#[derive(Clone)]
pub struct ConsoleOptions {
    /// The Remote Services API (`remoteservices`), mounted at its root.
    pub remote_services: Arc<dyn InProcess>,
    /// The identity admin API (`identityadmin`: `/users`, `/clients`), when this build
    /// runs one.
    pub identity_admin: Option<Arc<dyn InProcess>>,
    /// Read for the Gateway Registry section of the administration page; changed only
    /// through the registry API, by the operator's Registry page.
    pub store: Store,
    /// The deployment's firewall and proxy allow-list (the Network page).
    pub allow_list: AllowList,
}

/// The console's router: the tenants' pages, the operator's Registry (on the operators'
/// tenant's console host) and the embedded assets.
pub fn console_app(options: ConsoleOptions) -> Router {
    let tenant_pages = Router::new()
        .route("/", get(devices::page))
        .route("/devices/{name}", get(device::page))
        .route("/protocol-hub", get(protocol_hub::page))
        .route("/connections", get(connections::page))
        .route("/audit", get(audit::page))
        .route("/admin", get(admin::page))
        .route("/network", get(network_page::page))
        .route_layer(middleware::from_fn(
            operator::keep_operators_on_the_registry,
        ));
    Router::new()
        .merge(tenant_pages)
        .merge(operator::routes(options.store.clone()))
        .route("/assets/console.css", get(assets::css))
        .route("/assets/console.js", get(assets::js))
        .fallback(not_found)
        .with_state(Arc::new(options))
}

type State = axum::extract::State<Arc<ConsoleOptions>>;

/// The signed-in caller of a page request: the gateway's context (passed on to the APIs)
/// and who it is. Without one the request is answered with the signed-out page.
pub(crate) struct Caller {
    pub context: RequestContext,
    pub viewer: Viewer,
}

impl Caller {
    pub fn remote_services<'a>(&'a self, options: &'a ConsoleOptions) -> apis::Api<'a> {
        apis::Api::new(
            "Remote Services",
            Some(&options.remote_services),
            &self.context,
        )
    }

    pub fn identity_admin<'a>(&'a self, options: &'a ConsoleOptions) -> apis::Api<'a> {
        apis::Api::new(
            "identity admin",
            options.identity_admin.as_ref(),
            &self.context,
        )
    }

    /// The error page for this caller.
    pub fn error(&self, error: PageError) -> Response {
        error.render(Some(&self.viewer))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Response> {
        let context = parts.extensions.get::<RequestContext>().cloned();
        let viewer = context.as_ref().and_then(Viewer::from_context);
        match (context, viewer) {
            (Some(context), Some(viewer)) => Ok(Caller { context, viewer }),
            _ => Err(PageError::SignedOut.render(None)),
        }
    }
}

async fn not_found(caller: Result<Caller, Response>) -> Response {
    let error = PageError::NotFound("There is no such page in the console.".into());
    match caller {
        Ok(caller) => caller.error(error),
        Err(_) => error.render(None),
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
pub(crate) fn segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A query string from pairs, its values encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        out.append_pair(key, value);
    }
    out.finish()
}
