//! The sign-in side of the gateway's tests: [`Double`], an `Authenticator` written here in
//! place of the identity service, the `identity` service's in-process stand-in, and a
//! registry of web apps and APIs with each kind of protection.
//!
//! The double's tokens are plain text (`tok~tenant~subject~scopes~audiences`), and what it
//! mints for backends is `fwd~tenant~subject~audience`, so that tests can read both. The
//! real one is tested in the identity crate.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::Full;
use portico_gateway::auth::{Authenticator, Principal, SessionInfo, TokenRejection, VerifiedToken};
use portico_gateway::body::{boxed, Body};
use portico_gateway::{InProcess, RequestContext, Services};
use portico_store::{Auth, Registry};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::*;

/// The shop web app (`auth = "session"`) of tenant `abc`, also subscribed by `other`.
pub const SHOP: &str = "abc-shop-xyz.eu1.portico.localhost";
pub const SHOP_OF_OTHER: &str = "other-shop-xyz.eu1.portico.localhost";
/// A public web app (`auth = "none"`).
pub const PUBLIC: &str = "abc-pub.eu1.portico.localhost";
/// A web app with a WebSocket path.
pub const LIVE: &str = "abc-live.eu1.portico.localhost";
pub const GATEWAY: &str = "gateway.eu1.portico.localhost";
pub const SOUTHGATE: &str = "southgate.eu1.portico.localhost";
/// Every wait of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

/// Session `s-ann` of user ann (tenant abc), `s-olga` of olga (tenant other).
pub const ANN: &str = "s-ann";
pub const OLGA: &str = "s-olga";
pub const ANN_CSRF: &str = "csrf-of-ann";

/// The test double of the identity service.
#[derive(Default)]
pub struct Double {
    sessions: Mutex<HashMap<String, (SessionInfo, watch::Sender<bool>)>>,
    /// How often `session()` found each session (each marks it used).
    lookups: Mutex<HashMap<String, usize>>,
}

impl Double {
    pub fn with_sessions() -> Arc<Double> {
        let double = Arc::new(Double::default());
        double.add(ANN, "abc", "ann", &["portico", "role:user"], ANN_CSRF);
        double.add(OLGA, "other", "olga", &["portico"], "csrf-of-olga");
        double
    }

    pub fn add(&self, id: &str, tenant: &str, subject: &str, scopes: &[&str], csrf: &str) {
        let info = SessionInfo {
            principal: Principal {
                tenant: tenant.into(),
                subject: subject.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
            csrf_token: csrf.into(),
        };
        let (ended, _) = watch::channel(false);
        self.sessions
            .lock()
            .unwrap()
            .insert(id.into(), (info, ended));
    }

    /// Logs the session out.
    pub fn end(&self, id: &str) {
        if let Some((_, ended)) = self.sessions.lock().unwrap().remove(id) {
            ended.send_replace(true);
        }
    }

    pub fn lookups(&self, id: &str) -> usize {
        self.lookups.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl Authenticator for Double {
    fn session(&self, session_id: &str) -> BoxFuture<'_, Option<SessionInfo>> {
        let found = self
            .sessions
            .lock()
            .unwrap()
            .get(session_id)
            .map(|(info, _)| info.clone());
        if found.is_some() {
            *self
                .lookups
                .lock()
                .unwrap()
                .entry(session_id.into())
                .or_default() += 1;
        }
        Box::pin(async move { found })
    }

    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenRejection> {
        let parts: Vec<&str> = token.split('~').collect();
        let ["tok", tenant, subject, scopes, audiences] = parts.as_slice() else {
            return Err(TokenRejection::Unauthorized(
                "The token is not one of ours".into(),
            ));
        };
        if tenant.is_empty() {
            return Err(TokenRejection::Forbidden(
                "The token has no valid ten claim".into(),
            ));
        }
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        Ok(VerifiedToken {
            principal: Principal {
                tenant: tenant.to_string(),
                subject: subject.to_string(),
                scopes: list(scopes),
            },
            audiences: list(audiences),
        })
    }

    fn forward_token(&self, principal: &Principal, audience: &str) -> Result<String, String> {
        Ok(format!(
            "fwd~{}~{}~{audience}",
            principal.tenant, principal.subject
        ))
    }

    fn session_ended(&self, session_id: &str) -> BoxFuture<'static, ()> {
        let ended = self
            .sessions
            .lock()
            .unwrap()
            .get(session_id)
            .map(|(_, ended)| ended.subscribe());
        Box::pin(async move {
            if let Some(mut ended) = ended {
                let _ = ended.wait_for(|e| *e).await;
            }
        })
    }
}

/// The in-process `identity` service: answers with what the gateway handed it.
pub struct IdentityService;

impl InProcess for IdentityService {
    fn call(&self, request: Request<Body>) -> BoxFuture<'static, Response<Body>> {
        let context = request.extensions().get::<RequestContext>().cloned();
        let seen = serde_json::json!({
            "path": request.uri().to_string(),
            "tenant": context.as_ref().and_then(|c| c.tenant.clone()),
            "session": context.as_ref().and_then(|c| c.session.as_ref().map(|s| s.expose().to_string())),
            "subject": context.as_ref().and_then(|c| c.principal.as_ref().map(|p| p.subject.clone())),
            "cookie": request.headers().get("cookie").map(|c| c.to_str().unwrap().to_string()),
        });
        Box::pin(async move { Response::new(boxed(Full::new(Bytes::from(seen.to_string())))) })
    }
}

pub fn registry(web: SocketAddr, api_backend: SocketAddr, ws: SocketAddr) -> Registry {
    let mut shop = webapp("shop", Some("xyz"), web, &["abc", "other"]);
    shop.auth = Auth::Session;
    let mut admin = webapp("admin", None, web, &["abc"]);
    admin.auth = Auth::Session;
    admin.scopes = vec!["role:admin".into()];
    let public = webapp("pub", None, web, &["abc"]);
    let mut live = webapp("live", None, ws, &["abc"]);
    live.auth = Auth::Session;
    live.websockets = vec!["/ws".into()];
    let all: &[&str] = &[];
    let mut iot = api(
        "iot",
        Some("xyz"),
        3,
        api_backend,
        &[("/**", all)],
        &["abc"],
    );
    iot.auth = Auth::Bearer;
    let mut fleet = api(
        "fleet",
        None,
        1,
        api_backend,
        &[("/**", all)],
        &["abc", "other"],
    );
    fleet.auth = Auth::Bearer;
    fleet.scopes = vec!["fleet.write".into()];
    let status = api("status", None, 1, api_backend, &[("/**", all)], &["abc"]);
    Registry {
        tenants: vec![tenant("abc"), tenant("other")],
        webapps: vec![shop, admin, public, live],
        apis: vec![iot, fleet, status],
    }
}

/// A gateway with the double as its authenticator and with the `identity` service.
pub async fn gateway(double: &Arc<Double>) -> TestGateway {
    gateway_tweaked(double, |_| {}).await
}

pub async fn gateway_tweaked(
    double: &Arc<Double>,
    tweak: impl FnOnce(&mut portico_gateway::GatewayConfig),
) -> TestGateway {
    let (web, api_backend, ws) = (backend("web").await, backend("api").await, ws_echo().await);
    let mut services = Services::new();
    services.insert("identity".into(), Arc::new(IdentityService));
    let authenticator: Arc<dyn Authenticator> = double.clone();
    start_authenticated(
        &registry(web, api_backend, ws),
        services,
        Some(authenticator),
        tweak,
    )
    .await
}

/// What the echo backend reports of the request it got.
pub fn seen_header(raw: &Raw, name: &str) -> Option<String> {
    raw.json()["headers"][name].as_str().map(str::to_string)
}

pub fn cookie(id: &str) -> String {
    format!("Cookie: SESSION={id}")
}

pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// A WebSocket echo backend.
pub async fn ws_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    let data = message.is_text() || message.is_binary();
                    if data && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
