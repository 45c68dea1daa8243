//! Clientless hosts (RS-10) through a real gateway on loopback:
//! `{tenant}-remote-{connection id}` goes to the in-process service `clientless` in a
//! session of the host's tenant, whatever the path, WebSocket upgrades included; Portico's
//! cookies stay behind; device cookies for the whole region are dropped.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use portico_gateway::auth::{Authenticator, Principal, SessionInfo, TokenRejection, VerifiedToken};
use portico_gateway::body::{boxed, Body};
use portico_gateway::routing::HostKind;
use portico_gateway::{InProcess, RequestContext, Services, CLIENTLESS_SERVICE};
use portico_store::Registry;
use std::sync::Arc;
use support::*;

const ID: &str = "0123456789abcdef0123456789abcdef";
const SESSION: &str = "Cookie: SESSION=s-ann; XSRF-TOKEN=csrf; lang=de";

fn host() -> String {
    format!("abc-remote-{ID}.eu1.portico.localhost")
}

/// One session: `s-ann` of user ann in tenant abc.
struct OneSession;

impl Authenticator for OneSession {
    fn session(&self, session_id: &str) -> BoxFuture<'_, Option<SessionInfo>> {
        let found = (session_id == "s-ann").then(|| SessionInfo {
            principal: Principal {
                tenant: "abc".into(),
                subject: "ann".into(),
                scopes: vec![],
            },
            csrf_token: "csrf".into(),
        });
        Box::pin(async move { found })
    }

    fn verify_token(&self, _token: &str) -> Result<VerifiedToken, TokenRejection> {
        Err(TokenRejection::Unauthorized("no tokens here".into()))
    }

    fn forward_token(&self, _principal: &Principal, _audience: &str) -> Result<String, String> {
        Err("no tokens here".into())
    }

    fn session_ended(&self, _session_id: &str) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
}

/// Answers with what the gateway handed it, and sets three cookies.
struct Device;

impl InProcess for Device {
    fn call(&self, request: Request<Body>) -> BoxFuture<'static, Response<Body>> {
        let context = request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap();
        let provider = match &context.host.kind {
            HostKind::WebApp { provider, .. } => provider.clone(),
            _ => None,
        };
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let seen = serde_json::json!({
            "path": request.uri().to_string(),
            "tenant": context.tenant,
            "subject": context.principal.map(|p| p.subject),
            "provider": provider,
            "cookie": header("cookie"),
            "upgrade": header("upgrade"),
        });
        let mut response = Response::new(boxed(Full::new(Bytes::from(seen.to_string()))));
        for cookie in [
            "plc=1; Path=/",
            "wide=1; Domain=eu1.portico.localhost",
            "SESSION=x",
        ] {
            response
                .headers_mut()
                .append("set-cookie", cookie.parse().unwrap());
        }
        Box::pin(async move { response })
    }
}

async fn gateway(with_service: bool) -> TestGateway {
    let mut services = Services::new();
    if with_service {
        services.insert(CLIENTLESS_SERVICE.into(), Arc::new(Device));
    }
    let registry = Registry {
        tenants: vec![tenant("abc")],
        ..Registry::default()
    };
    let authenticator: Arc<dyn Authenticator> = Arc::new(OneSession);
    start_authenticated(&registry, services, Some(authenticator), |_| {}).await
}

#[tokio::test]
async fn every_path_goes_to_the_service_in_the_users_session_without_portico_cookies() {
    let gw = gateway(true).await;
    let answer = get(gw.addr, &host(), "/api/plc/values?x=1", &[SESSION]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = answer.json();
    assert_eq!(seen["path"], "/api/plc/values?x=1");
    assert_eq!(seen["tenant"], "abc");
    assert_eq!(seen["subject"], "ann");
    assert_eq!(seen["provider"], ID);
    assert_eq!(seen["cookie"], "lang=de");
    // The device's own cookie passes; one for the region, or named like Portico's, does not.
    let set: Vec<&str> = answer
        .head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .collect();
    assert_eq!(set.len(), 1, "{}", answer.head);
    assert!(set[0].contains("plc=1"), "{}", answer.head);
}

#[tokio::test]
async fn without_a_session_pages_go_to_login_on_the_host_and_ajax_gets_401() {
    let gw = gateway(true).await;
    let page = get(gw.addr, &host(), "/hmi/index.html", &[]).await;
    assert_eq!(page.status, 302);
    assert_eq!(
        page.header("location"),
        Some("/login?return=%2Fhmi%2Findex.html")
    );
    let ajax = get(
        gw.addr,
        &host(),
        "/values",
        &["X-Requested-With: XMLHttpRequest"],
    )
    .await;
    assert_eq!(ajax.status, 401);
    let foreign = get(gw.addr, &host(), "/", &["Cookie: SESSION=unknown"]).await;
    assert_eq!(foreign.status, 302);
}

#[tokio::test]
async fn state_changes_and_websockets_need_the_hosts_origin_but_no_csrf_token() {
    let gw = gateway(true).await;
    let origin = format!("Origin: http://{}", host());
    let posted = send(
        gw.addr,
        "POST",
        &host(),
        "/form",
        &[SESSION, &origin],
        "a=1",
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let forged = send(
        gw.addr,
        "POST",
        &host(),
        "/form",
        &[SESSION, "Origin: http://evil.example"],
        "a=1",
    )
    .await;
    assert_eq!(forged.status, 403);
    let no_origin = send(gw.addr, "POST", &host(), "/form", &[SESSION], "a=1").await;
    assert_eq!(no_origin.status, 403);

    let upgrade = [
        SESSION,
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let with_origin = [&upgrade[..], &[origin.as_str()]].concat();
    let reached = get(gw.addr, &host(), "/any/path/ws", &with_origin).await;
    assert_eq!(reached.status, 200, "{}", reached.body);
    assert_eq!(reached.json()["upgrade"], "websocket");
    let cross = [&upgrade[..], &["Origin: http://evil.example"]].concat();
    assert_eq!(get(gw.addr, &host(), "/ws", &cross).await.status, 403);
}

#[tokio::test]
async fn unknown_tenants_and_builds_without_the_service_are_not_found() {
    let gw = gateway(true).await;
    let other = format!("zzz-remote-{ID}.eu1.portico.localhost");
    assert_eq!(get(gw.addr, &other, "/", &[SESSION]).await.status, 404);
    // Without a connection id the label is an ordinary (unregistered) web app.
    let plain = get(gw.addr, "abc-remote.eu1.portico.localhost", "/", &[SESSION]).await;
    assert_eq!(plain.status, 404);
    // A tenant name of 24 characters makes a first label longer than DNS allows.
    let long = format!("{}-remote-{ID}.eu1.portico.localhost", "t".repeat(24));
    let answer = get(gw.addr, &long, "/", &[SESSION]).await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.body.contains("more than DNS allows"),
        "{}",
        answer.body
    );
    let without = gateway(false).await;
    let answer = get(without.addr, &host(), "/", &[SESSION]).await;
    assert_eq!(answer.status, 404);
    assert!(answer.body.contains("not served"), "{}", answer.body);
}
