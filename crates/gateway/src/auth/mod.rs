//! Who is calling (SPEC ID-1..ID-5, GW-23): the phase between routing and forwarding that
//! enforces a registration's `auth`, and the boundary to the identity service.
//!
//! The gateway does not know how sessions are kept or tokens signed. It defines
//! [`Authenticator`], which the binary implements with Portico's identity service (and
//! tests with a double), and does the rest itself:
//!
//! - `auth = "session"` on a web app: the session in cookie `SESSION`, else `REGION-SESSION`,
//!   of the host's tenant; without one a browser is sent to `/login?return=…` (302) and an
//!   AJAX request gets 401 ([`enforce`]).
//! - `auth = "bearer"` on an API: `Authorization: Bearer …`, verified by the authenticator;
//!   the gateway checks the audience, the tenant's subscription and the scopes. On a web-app
//!   host the app's session may authorise its API calls instead.
//! - State-changing requests in a session need the CSRF token and the app's own origin
//!   ([`csrf`]).
//! - What a backend of an authenticated registration receives ([`forwarded`]): a bearer
//!   token minted for it, never Portico's session cookies.
//! - A WebSocket opened in a session keeps it alive and closes with 1008 when it ends
//!   ([`session_watch`]).
//!
//! Core identity paths (`/login`, `/logout`, `/uaa`, `/oauth`, `/.well-known`) go to the
//! in-process service `identity` with the caller's session, if any, in the
//! [`crate::RequestContext`].

pub mod cookies;
pub mod csrf;
pub(crate) mod enforce;
pub(crate) mod forwarded;
pub(crate) mod session_watch;

use futures_util::future::BoxFuture;
use portico_store::Auth;
use std::fmt;

pub(crate) use enforce::{authorize, Caller, Denial};

/// The cookie of the app's own host that carries the session id (ID-1).
pub const SESSION_COOKIE: &str = "SESSION";
/// The same session id for every host of the region (`Domain={region}.{domain}`).
pub const REGION_SESSION_COOKIE: &str = "REGION-SESSION";
/// The session's CSRF token, readable by the app's scripts (ID-5).
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";
/// Where the app's scripts echo the CSRF token.
pub const XSRF_HEADER: &str = "x-xsrf-token";
/// The audience every Portico API accepts besides its own (`docs/identity.md`).
pub const GATEWAY_AUDIENCE: &str = "portico";

/// Someone authenticated: a user of a session or the subject of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// The user, or the OAuth client of a client-credentials token.
    pub subject: String,
    pub scopes: Vec<String>,
}

impl Principal {
    /// The user's role, from the scope `role:{role}` the identity service gives every user
    /// (a client-credentials token has none).
    pub fn role(&self) -> Option<&str> {
        self.scopes.iter().find_map(|s| s.strip_prefix("role:"))
    }

    /// The scopes of `required` this principal does not hold.
    pub fn missing_scopes<'a>(&self, required: &'a [String]) -> Vec<&'a str> {
        required
            .iter()
            .filter(|s| !self.scopes.contains(s))
            .map(String::as_str)
            .collect()
    }
}

/// A session id. A secret: it never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub fn new(id: impl Into<String>) -> SessionId {
        SessionId(id.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// A live session.
#[derive(Clone)]
pub struct SessionInfo {
    pub principal: Principal,
    /// The token state-changing requests must echo in `X-XSRF-TOKEN` (ID-5).
    pub csrf_token: String,
}

impl fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionInfo")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// A bearer token the authenticator accepted: signature, expiry, issuer and tenant are
/// good. Its audiences are left to the gateway, which knows the target.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub audiences: Vec<String>,
}

/// Why a bearer token was refused; the text is for the caller (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a token of ours, tampered with, or expired: 401.
    Unauthorized(String),
    /// A well-signed token that may not be used at all, e.g. one without a valid `ten`
    /// claim (ID-4): 403.
    Forbidden(String),
}

/// The identity service as the gateway needs it. Implemented by the binary over
/// Portico's identity service; every method is cheap or cached on that side, as the
/// gateway calls them on each request of an authenticated registration.
pub trait Authenticator: Send + Sync + 'static {
    /// The live session with this id, marked as used now; `None` when unknown, ended or
    /// expired. The gateway checks the session's tenant against the host's.
    fn session(&self, session_id: &str) -> BoxFuture<'_, Option<SessionInfo>>;

    /// Checks a presented bearer token's signature, expiry, issuer and `ten` claim.
    /// Audiences and scopes are checked by the gateway against the target.
    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenRejection>;

    /// The JWT a backend receives for `principal` (ID-4), with audience `audience`
    /// (`webapp:{key}` or `api:{name}`). The error text is logged, never shown.
    fn forward_token(&self, principal: &Principal, audience: &str) -> Result<String, String>;

    /// Resolves when the session ends, by logout or expiry; at once when it is not live.
    fn session_ended(&self, session_id: &str) -> BoxFuture<'static, ()>;
}

/// What a registration requires of its callers, compiled into the routing table.
#[derive(Debug, Clone)]
pub struct Rule {
    pub auth: Auth,
    /// The audience of the forwarded token: `webapp:{key}` or `api:{name[-provider]}`.
    pub audience: String,
    /// Scopes the caller must all hold.
    pub scopes: Vec<String>,
    /// The tenants subscribed to the registration, looked up on every request (see
    /// [`crate::table::RoutingTable`] for the hasher).
    pub subscribers: foldhash::HashSet<String>,
    /// Portico's own APIs (built in, no tenant listed) serve every tenant.
    pub every_tenant: bool,
}

impl Rule {
    /// Whether callers of `tenant` may use the registration.
    pub fn serves(&self, tenant: &str) -> bool {
        self.every_tenant || self.subscribers.contains(tenant)
    }
}

impl Rule {
    pub fn is_open(&self) -> bool {
        self.auth == Auth::None
    }
}

/// The audience of a web app's forwarded tokens.
pub fn webapp_audience(key: &str) -> String {
    format!("webapp:{key}")
}

/// The audience of an API: its name with the provider, without the version, since a
/// token for an API holds for each of its versions.
pub fn api_audience(name: &str, provider: Option<&str>) -> String {
    format!("api:{}", portico_store::app_key(name, provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let id = SessionId::new("s3cr3t-session");
        assert!(!format!("{id:?}").contains("s3cr3t"));
        let info = SessionInfo {
            principal: Principal {
                tenant: "abc".into(),
                subject: "ann".into(),
                scopes: vec![],
            },
            csrf_token: "s3cr3t-csrf".into(),
        };
        let shown = format!("{info:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("ann"),
            "{shown}"
        );
    }

    #[test]
    fn audiences_name_the_registration() {
        assert_eq!(webapp_audience("shop-xyz"), "webapp:shop-xyz");
        assert_eq!(api_audience("iot", Some("xyz")), "api:iot-xyz");
        assert_eq!(api_audience("iot", None), "api:iot");
    }

    #[test]
    fn missing_scopes_are_listed_in_order() {
        let p = Principal {
            tenant: "abc".into(),
            subject: "ann".into(),
            scopes: vec!["read".into()],
        };
        let required = vec!["write".to_string(), "read".to_string(), "admin".to_string()];
        assert_eq!(p.missing_scopes(&required), ["write", "admin"]);
    }
}
