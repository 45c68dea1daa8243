//! The identity service over HTTP: the login page, logout, the OAuth 2.0 endpoints and
//! the `/.well-known` documents, as an axum [`Router`] that the gateway mounts as the
//! in-process service `identity` for the core paths.
//!
//! The handlers do not know the gateway: they read a [`Caller`] from the request
//! extensions, which whoever serves the router inserts.

mod admin_api;
mod cookies;
mod login;
mod oauth;
mod oidc_login;
mod page;
mod well_known;

use std::net::IpAddr;

use axum::routing::{get, post};
use axum::Router;

use crate::{Identity, Session, MANAGEMENT_TENANT};

pub use admin_api::{admin_api, AdminCaller};
pub use cookies::{REGION_SESSION_COOKIE, SESSION_COOKIE, XSRF_COOKIE};

/// Who is calling, as the gateway saw it.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant of the host (`None` on a gateway host, where the operator logs in).
    pub tenant: Option<String>,
    /// The `Host` the request was addressed to (with the port when not the default).
    pub host: String,
    /// Whether the request came over TLS (cookies then get `Secure`).
    pub tls: bool,
    /// The client's address, for login throttling.
    pub client: IpAddr,
    /// The session id the request presented (`SESSION`, else `REGION-SESSION`).
    pub session_id: Option<String>,
    /// The `Domain` of the `REGION-SESSION` cookie: `{region}.{domain}`.
    pub region_domain: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("tenant", &self.tenant)
            .field("host", &self.host)
            .field("tls", &self.tls)
            .field("client", &self.client)
            .field("has_session", &self.session_id.is_some())
            .field("region_domain", &self.region_domain)
            .finish()
    }
}

impl Caller {
    /// The tenant users log into on this host.
    pub fn login_tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or(MANAGEMENT_TENANT)
    }
}

/// The routes: `GET|POST /login`, `GET|POST /logout` (GET shows the button that POSTs), `POST /uaa/oauth/token`,
/// `GET /oauth/authorize`, `GET /.well-known/openid-configuration`,
/// `GET /.well-known/jwks.json`.
pub fn router(identity: Identity) -> Router {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/login/oidc", get(oidc_login::start))
        .route("/login/oidc/callback", get(oidc_login::callback))
        .route("/logout", get(login::logout_page).post(login::logout))
        .route("/uaa/oauth/token", post(oauth::token))
        .route("/oauth/authorize", get(oauth::authorize))
        .route(
            "/.well-known/openid-configuration",
            get(well_known::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .with_state(identity)
}

/// The caller's live session, if it belongs to the host's tenant (a session of another
/// tenant is ignored, as if there were none). A store failure counts as no session.
async fn caller_session(identity: &Identity, caller: &Caller) -> Option<Session> {
    let id = caller.session_id.as_deref()?;
    match identity.session(id).await {
        Ok(Some(s)) if s.tenant == caller.login_tenant() => Some(s),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up a session");
            None
        }
    }
}
