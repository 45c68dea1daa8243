//! Who may pass, through a real gateway on loopback (ID-1..ID-5, GW-23): sessions on web
//! apps with the login redirect and the AJAX 401, bearer tokens on APIs with audience,
//! tenant and scopes, CSRF, the token a backend receives instead of the client's
//! credentials, the core identity paths, and WebSockets closed with 1008 when their
//! session ends.
//!
//! The identity service is replaced by [`Double`], an `Authenticator` written here: its
//! tokens are plain text (`tok~tenant~subject~scopes~audiences`), and what it mints for
//! backends is `fwd~tenant~subject~audience`, so that tests can read both. The real one
//! is tested in the identity crate.

#![allow(clippy::unwrap_used)]

mod support;

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
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The shop web app (`auth = "session"`) of tenant `abc`, also subscribed by `other`.
const SHOP: &str = "abc-shop-xyz.eu1.portico.localhost";
const SHOP_OF_OTHER: &str = "other-shop-xyz.eu1.portico.localhost";
/// A public web app (`auth = "none"`).
const PUBLIC: &str = "abc-pub.eu1.portico.localhost";
/// A web app with a WebSocket path.
const LIVE: &str = "abc-live.eu1.portico.localhost";
const GATEWAY: &str = "gateway.eu1.portico.localhost";
const SOUTHGATE: &str = "southgate.eu1.portico.localhost";
/// Every wait of a test is bounded by this.
const STEP: Duration = Duration::from_secs(10);

/// Session `s-ann` of user ann (tenant abc), `s-olga` of olga (tenant other).
const ANN: &str = "s-ann";
const OLGA: &str = "s-olga";
const ANN_CSRF: &str = "csrf-of-ann";

/// The test double of the identity service.
#[derive(Default)]
struct Double {
    sessions: Mutex<HashMap<String, (SessionInfo, watch::Sender<bool>)>>,
    /// How often `session()` found each session (each marks it used).
    lookups: Mutex<HashMap<String, usize>>,
}

impl Double {
    fn with_sessions() -> Arc<Double> {
        let double = Arc::new(Double::default());
        double.add(ANN, "abc", "ann", &["portico", "role:user"], ANN_CSRF);
        double.add(OLGA, "other", "olga", &["portico"], "csrf-of-olga");
        double
    }

    fn add(&self, id: &str, tenant: &str, subject: &str, scopes: &[&str], csrf: &str) {
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
    fn end(&self, id: &str) {
        if let Some((_, ended)) = self.sessions.lock().unwrap().remove(id) {
            ended.send_replace(true);
        }
    }

    fn lookups(&self, id: &str) -> usize {
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
struct IdentityService;

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

fn registry(web: SocketAddr, api_backend: SocketAddr, ws: SocketAddr) -> Registry {
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
async fn gateway(double: &Arc<Double>) -> TestGateway {
    gateway_tweaked(double, |_| {}).await
}

async fn gateway_tweaked(
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
fn seen_header(raw: &Raw, name: &str) -> Option<String> {
    raw.json()["headers"][name].as_str().map(str::to_string)
}

fn cookie(id: &str) -> String {
    format!("Cookie: SESSION={id}")
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[tokio::test]
async fn browsers_without_a_session_go_to_login_and_ajax_gets_401() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    let r = get(gw.addr, SHOP, "/reports/q1?x=1&y=2", &[]).await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("/login?return=%2Freports%2Fq1%3Fx%3D1%26y%3D2")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let r = get(
        gw.addr,
        SHOP,
        "/reports",
        &["X-Requested-With: XMLHttpRequest"],
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["status"], 401);
    assert!(r.header("location").is_none());

    // An unknown or ended session is no session.
    let r = get(gw.addr, SHOP, "/", &[&cookie("s-nobody")]).await;
    assert_eq!(r.status, 302);
    double.add("s-gone", "abc", "gus", &[], "c");
    double.end("s-gone");
    let r = get(gw.addr, SHOP, "/", &[&cookie("s-gone")]).await;
    assert_eq!(r.status, 302);

    let r = get(gw.addr, SHOP, "/", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-backend"), Some("web"));
}

#[tokio::test]
async fn a_session_counts_only_on_its_own_tenants_hosts() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    // Olga's session (tenant other) on tenant abc's host is as if there were none.
    let r = get(gw.addr, SHOP, "/", &[&cookie(OLGA)]).await;
    assert_eq!(r.status, 302, "{r:?}");
    let r = get(
        gw.addr,
        SHOP,
        "/",
        &[&cookie(OLGA), "X-Requested-With: XMLHttpRequest"],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = get(gw.addr, SHOP_OF_OTHER, "/", &[&cookie(OLGA)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~other~olga~webapp:shop-xyz")
    );

    // REGION-SESSION serves when SESSION is missing, or belongs elsewhere.
    let r = get(
        gw.addr,
        SHOP,
        "/",
        &[&format!("Cookie: REGION-SESSION={ANN}")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let both = format!("Cookie: SESSION={OLGA}; REGION-SESSION={ANN}");
    let r = get(gw.addr, SHOP, "/", &[&both]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~ann~webapp:shop-xyz")
    );

    // A web app's scopes: ann is no admin.
    let admin = "abc-admin.eu1.portico.localhost";
    let r = get(gw.addr, admin, "/", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("insufficient_scope"), "{}", r.body);
    double.add("s-root", "abc", "root", &["role:admin"], "c");
    let r = get(gw.addr, admin, "/", &[&cookie("s-root")]).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn the_backend_gets_a_token_for_it_and_never_the_session_secrets() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let cookies = format!("Cookie: theme=dark; SESSION={ANN}; XSRF-TOKEN={ANN_CSRF}; lang=de");
    let r = get(
        gw.addr,
        SHOP,
        "/page",
        &[
            &cookies,
            "Authorization: Basic YW5uOnB3",
            &format!("X-XSRF-TOKEN: {ANN_CSRF}"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~ann~webapp:shop-xyz"),
        "the client's Authorization is replaced"
    );
    assert_eq!(
        seen_header(&r, "cookie").as_deref(),
        Some("theme=dark; lang=de")
    );
    assert_eq!(seen_header(&r, "x-xsrf-token"), None);

    // An API call with a token: the backend gets a token for that API, not the client's.
    let token = "tok~abc~svc~~portico";
    let r = get(
        gw.addr,
        GATEWAY,
        "/api/iot-xyz/v3/assets",
        &[&bearer(token)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~svc~api:iot-xyz")
    );
}

#[tokio::test]
async fn apis_need_a_valid_bearer_token_meant_for_them() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let path = "/api/iot-xyz/v3/assets/7";

    let r = get(gw.addr, GATEWAY, path, &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portico\"")
    );
    let r = get(gw.addr, GATEWAY, path, &["Authorization: Basic YTpi"]).await;
    assert_eq!(r.status, 401);

    let r = get(gw.addr, GATEWAY, path, &[&bearer("forged")]).await;
    assert_eq!(r.status, 401, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The authenticator's Forbidden (no valid `ten`) is 403.
    let r = get(gw.addr, GATEWAY, path, &[&bearer("tok~~svc~~portico")]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["message"].as_str().unwrap().contains("ten"));

    // A token for another audience is not valid here: 401 invalid_token.
    let r = get(gw.addr, GATEWAY, path, &[&bearer("tok~abc~svc~~api:fleet")]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = get(
        gw.addr,
        GATEWAY,
        path,
        &[&bearer("tok~abc~svc~~webapp:shop-xyz")],
    )
    .await;
    assert_eq!(r.status, 401);

    // Its own audience, or Portico's, passes; on southgate too.
    for token in ["tok~abc~svc~~api:iot-xyz", "tok~abc~svc~~api:fleet,portico"] {
        for host in [GATEWAY, SOUTHGATE] {
            let r = get(gw.addr, host, path, &[&bearer(token)]).await;
            assert_eq!(r.status, 200, "{token} on {host}: {r:?}");
            assert_eq!(r.header("x-backend"), Some("api"));
        }
    }
    let r = get(gw.addr, SOUTHGATE, path, &[&bearer("forged")]).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn tokens_need_a_subscribed_tenant_and_the_apis_scopes() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    // Tenant other is not subscribed to iot.
    let r = get(
        gw.addr,
        GATEWAY,
        "/api/iot-xyz/v3/assets",
        &[&bearer("tok~other~svc~~portico")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("not subscribed"), "{}", r.body);

    // fleet needs fleet.write.
    let path = "/api/fleet/v1/trucks";
    let r = get(
        gw.addr,
        GATEWAY,
        path,
        &[&bearer("tok~abc~svc~fleet.read~portico")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("insufficient_scope"), "{}", r.body);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("fleet.write"),
        "{challenge}"
    );
    let token = "tok~other~svc~fleet.read,fleet.write~api:fleet";
    let r = get(gw.addr, GATEWAY, path, &[&bearer(token)]).await;
    assert_eq!(r.status, 200, "{r:?}");

    // On a web-app host, a token of tenant abc does not act for tenant other.
    let r = get(
        gw.addr,
        SHOP_OF_OTHER,
        path,
        &[&bearer("tok~abc~svc~fleet.write~portico")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = get(
        gw.addr,
        SHOP,
        path,
        &[&bearer("tok~abc~svc~fleet.write~portico")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_web_apps_session_authorises_its_api_calls() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let path = "/api/iot-xyz/v3/assets";

    let r = get(gw.addr, SHOP, path, &[&cookie(ANN)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~ann~api:iot-xyz")
    );
    assert_eq!(seen_header(&r, "cookie"), None);
    // Without a session an API call gets 401, never a redirect.
    let r = get(gw.addr, SHOP, path, &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    // The session of another tenant does not count; nor does a session on the gateway host.
    let r = get(gw.addr, SHOP, path, &[&cookie(OLGA)]).await;
    assert_eq!(r.status, 401);
    let r = get(gw.addr, GATEWAY, path, &[&cookie(ANN)]).await;
    assert_eq!(r.status, 401);
    // Ann lacks fleet.write.
    let r = get(gw.addr, SHOP, "/api/fleet/v1/trucks", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn state_changing_requests_in_a_session_need_the_csrf_token_and_the_apps_origin() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let own = format!("Origin: http://{SHOP}");
    let token = format!("X-XSRF-TOKEN: {ANN_CSRF}");
    let session = cookie(ANN);
    let post = |extra: Vec<String>| {
        let addr = gw.addr;
        async move {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            send(addr, "POST", SHOP, "/orders", &extra, "{}").await
        }
    };

    let r = post(vec![session.clone(), own.clone()]).await;
    assert_eq!(r.status, 403, "missing token: {r:?}");
    let r = post(vec![
        session.clone(),
        own.clone(),
        "X-XSRF-TOKEN: guessed".into(),
    ])
    .await;
    assert_eq!(r.status, 403, "wrong token: {r:?}");
    let r = post(vec![
        session.clone(),
        token.clone(),
        "Origin: http://evil.example".into(),
    ])
    .await;
    assert_eq!(r.status, 403, "foreign origin: {r:?}");
    let r = post(vec![session.clone(), token.clone()]).await;
    assert_eq!(r.status, 403, "no origin: {r:?}");

    let r = post(vec![session.clone(), token.clone(), own.clone()]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["method"], "POST");
    let r = post(vec![
        session.clone(),
        token.clone(),
        format!("Referer: http://{SHOP}/cart"),
    ])
    .await;
    assert_eq!(
        r.status, 200,
        "a Referer of the app serves without Origin: {r:?}"
    );
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = send(gw.addr, method, SHOP, "/orders/1", &[&session, &own], "").await;
        assert_eq!(r.status, 403, "{method} without token");
    }

    // The same for the app's API calls in the session.
    let api = "/api/iot-xyz/v3/assets";
    let r = send(gw.addr, "POST", SHOP, api, &[&session, &own], "{}").await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = send(gw.addr, "POST", SHOP, api, &[&session, &own, &token], "{}").await;
    assert_eq!(r.status, 200, "{r:?}");

    // Bearer requests are exempt.
    let r = send(
        gw.addr,
        "POST",
        GATEWAY,
        api,
        &[&bearer("tok~abc~svc~~portico")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn registrations_without_auth_are_unchanged() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let r = get(
        gw.addr,
        PUBLIC,
        "/page",
        &["Authorization: Basic YTpi", "Cookie: theme=dark"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Basic YTpi")
    );
    assert_eq!(seen_header(&r, "cookie").as_deref(), Some("theme=dark"));
    let r = send(gw.addr, "POST", PUBLIC, "/form", &[], "x").await;
    assert_eq!(r.status, 200, "no CSRF check without a session: {r:?}");

    let r = get(
        gw.addr,
        GATEWAY,
        "/api/status/v1/now",
        &["Authorization: Bearer not-ours"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer not-ours")
    );

    // Portico's session secrets are not a public app's business.
    let r = get(
        gw.addr,
        PUBLIC,
        "/page",
        &[&format!(
            "Cookie: SESSION={ANN}; theme=dark; XSRF-TOKEN={ANN_CSRF}"
        )],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(seen_header(&r, "cookie").as_deref(), Some("theme=dark"));
    assert_eq!(
        seen_header(&r, "authorization"),
        None,
        "no token is minted for a public app"
    );
}

#[tokio::test]
async fn without_identity_protected_registrations_answer_503() {
    let (web, api_backend, ws) = (backend("web").await, backend("api").await, ws_echo().await);
    let gw = start(&registry(web, api_backend, ws), |_| {}).await;
    let r = get(gw.addr, SHOP, "/", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("identity"), "{}", r.body);
    let r = get(gw.addr, GATEWAY, "/api/iot-xyz/v3/a", &[&bearer("x")]).await;
    assert_eq!(r.status, 503);
    let r = get(gw.addr, PUBLIC, "/", &[]).await;
    assert_eq!(r.status, 200);
    // Without the identity service, its core paths stay reserved.
    let r = get(gw.addr, SHOP, "/login", &[]).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn core_paths_reach_the_identity_service_with_the_session() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    let r = get(gw.addr, SHOP, "/login?return=%2Fx", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.json();
    assert_eq!(seen["path"], "/login?return=%2Fx");
    assert_eq!(seen["tenant"], "abc");
    assert_eq!(seen["session"], ANN);
    assert_eq!(seen["subject"], "ann");
    assert_eq!(
        seen["cookie"],
        format!("SESSION={ANN}"),
        "the identity service sees the request as it came"
    );
    // Web-app headers apply to its pages.
    assert!(r.header("content-security-policy").is_some());

    let r = get(gw.addr, SHOP, "/logout", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["session"].is_null());
    // Another tenant's session is not handed on a tenant's host.
    let r = get(gw.addr, SHOP, "/login", &[&cookie(OLGA)]).await;
    assert!(r.json()["session"].is_null());

    for (host, path) in [
        (GATEWAY, "/.well-known/jwks.json"),
        (GATEWAY, "/uaa/oauth/token"),
        (SOUTHGATE, "/uaa/oauth/token"),
        (SHOP, "/oauth/authorize?client_id=c"),
    ] {
        let r = get(gw.addr, host, path, &[]).await;
        assert_eq!(r.status, 200, "{host}{path}: {r:?}");
        assert_eq!(r.json()["path"], path);
    }
    let r = get(gw.addr, GATEWAY, "/oauth/authorize", &[&cookie(OLGA)]).await;
    assert_eq!(
        r.json()["session"],
        OLGA,
        "the gateway host names no tenant"
    );
    let r = get(
        gw.addr,
        "nobody-shop-xyz.eu1.portico.localhost",
        "/login",
        &[],
    )
    .await;
    assert_eq!(r.status, 404, "an unknown tenant has no login page");
    let r = get(gw.addr, SOUTHGATE, "/inventory/x", &[]).await;
    assert_eq!(r.status, 404, "device paths are not identity's");
}

/// A WebSocket echo backend.
async fn ws_echo() -> SocketAddr {
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

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_ws(
    addr: SocketAddr,
    headers: &[(&'static str, String)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{LIVE}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap()
    .map(|(socket, _)| socket)
}

/// Sends `text` and waits for its echo.
async fn echo(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
    loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("an echo in time")
            .expect("the socket is open")
            .unwrap();
        if message.is_text() {
            assert_eq!(message.into_text().unwrap().as_str(), text);
            return;
        }
    }
}

#[tokio::test]
async fn a_websocket_closes_with_1008_when_its_session_ends() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let own = ("origin", format!("http://{LIVE}"));

    let refused = open_ws(gw.addr, &[("cookie", format!("SESSION={ANN}"))]).await;
    assert!(
        refused.is_err(),
        "a session's WebSocket needs the app's origin"
    );
    let refused = open_ws(
        gw.addr,
        &[
            ("cookie", format!("SESSION={ANN}")),
            ("origin", "http://evil.example".into()),
        ],
    )
    .await;
    assert!(refused.is_err());
    let refused = open_ws(gw.addr, std::slice::from_ref(&own)).await;
    assert!(refused.is_err(), "no session, no WebSocket");

    let mut socket = open_ws(gw.addr, &[("cookie", format!("SESSION={ANN}")), own])
        .await
        .unwrap();
    echo(&mut socket, "hello").await;
    double.end(ANN);
    let close = loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("a close in time");
        match message {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close code");
    assert_eq!(frame.code, CloseCode::Policy);
    assert_eq!(u16::from(frame.code), 1008);
}

#[tokio::test]
async fn traffic_on_a_websocket_keeps_its_session_alive_and_pings_do_not() {
    let double = Double::with_sessions();
    let touch = Duration::from_millis(100);
    let gw = gateway_tweaked(&double, |c| {
        c.session_touch_interval = touch;
        c.websocket_ping_interval = Some(Duration::from_millis(30));
    })
    .await;
    let mut socket = open_ws(
        gw.addr,
        &[
            ("cookie", format!("SESSION={ANN}")),
            ("origin", format!("http://{LIVE}")),
        ],
    )
    .await
    .unwrap();
    let at_open = double.lookups(ANN);
    assert!(at_open >= 1, "the handshake looked the session up");

    // Messages over several touch intervals touch the session.
    for i in 0..6 {
        echo(&mut socket, &format!("m{i}")).await;
        tokio::time::sleep(touch).await;
    }
    let after_traffic = double.lookups(ANN);
    assert!(
        after_traffic > at_open,
        "traffic touched the session: {at_open} -> {after_traffic}"
    );

    // Quiet but for the gateway's pings (answered by the client as it reads): the
    // session is left alone, at most one touch for the last messages.
    let quiet = async {
        while let Some(Ok(message)) = socket.next().await {
            assert!(message.is_ping(), "only pings arrive: {message:?}");
        }
    };
    let _ = tokio::time::timeout(touch * 8, quiet).await;
    let after_quiet = double.lookups(ANN);
    assert!(
        after_quiet <= after_traffic + 1,
        "pings do not keep the session alive: {after_traffic} -> {after_quiet}"
    );
}
