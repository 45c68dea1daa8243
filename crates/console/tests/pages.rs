//! The console's pages through its router, over the real Remote Services API (a SQLite
//! store) and a small identity admin API: every page for each role, the role-forbidden
//! pages, escaping, and tenant isolation.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use axum::routing::get;
use axum::{Json, Router};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use portico_console::network::{AllowList, AllowRow};
use portico_console::{console_app, ConsoleOptions};
use portico_gateway::auth::Principal;
use portico_gateway::body::{full, Body};
use portico_gateway::routing::{HostKind, ParsedHost};
use portico_gateway::{from_tower, RequestContext};
use portico_relay::api::{remote_services_api, Caller, CredentialIssuer, Credentials, IssueFuture};
use portico_store::{Origin, Registry, Store, Tenant, WebApp};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const HOSTILE: &str = "<script>alert('x')</script> & \"quoted\"";

struct NoIssuer;

impl CredentialIssuer for NoIssuer {
    fn issue<'a>(&'a self, tenant: &'a str, endpoint: &'a str) -> IssueFuture<'a, Credentials> {
        Box::pin(async move {
            Ok(Credentials {
                client_id: format!("{tenant}-{endpoint}"),
                client_secret: "not-shown".into(),
            })
        })
    }
    fn revoke<'a>(&'a self, _: &'a str, _: &'a str) -> IssueFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The role of a principal, as the binary reads it: the scope `role:{role}`.
fn role_of(context: Option<&RequestContext>) -> Option<(String, String, String)> {
    let principal = context?.principal.as_ref()?;
    let role = principal
        .scopes
        .iter()
        .find_map(|s| s.strip_prefix("role:"))?;
    Some((
        principal.tenant.clone(),
        principal.subject.clone(),
        role.to_string(),
    ))
}

/// The relay API as the binary mounts it: its `Caller` from the gateway's principal.
fn remote_services(store: Store) -> Arc<dyn portico_gateway::InProcess> {
    let router = remote_services_api(store, Arc::new(NoIssuer));
    let service = tower::ServiceBuilder::new()
        .map_request(|mut request: Request<Body>| {
            if let Some((tenant, subject, role)) = role_of(request.extensions().get()) {
                request.extensions_mut().insert(Caller {
                    tenant,
                    subject,
                    role,
                });
            }
            request
        })
        .service(router);
    from_tower(service)
}

/// A stand-in for the identity admin API: administrators only, the caller's tenant.
fn identity_admin() -> Arc<dyn portico_gateway::InProcess> {
    fn admin(request: &Request<axum::body::Body>) -> Result<String, StatusCode> {
        match role_of(request.extensions().get()) {
            Some((tenant, _, role)) if role == "admin" => Ok(tenant),
            _ => Err(StatusCode::FORBIDDEN),
        }
    }
    let router = Router::new()
        .route(
            "/users",
            get(|request: Request<axum::body::Body>| async move {
                let tenant = admin(&request)?;
                Ok::<_, StatusCode>(Json(json!([
                    {"name": format!("{tenant}-ada"), "role": "admin", "created_ms": 1},
                    {"name": "ulf", "role": "user", "created_ms": 2}
                ])))
            }),
        )
        .route(
            "/clients",
            get(|request: Request<axum::body::Body>| async move {
                admin(&request)?;
                Ok::<_, StatusCode>(Json(json!([{
                    "client_id": "cli-1", "name": "Reporting", "confidential": true,
                    "grant_types": ["client_credentials"], "scopes": [], "redirect_uris": [],
                    "created_ms": 3
                }])))
            }),
        );
    from_tower(router)
}

struct World {
    console: Router,
    relay: Arc<dyn portico_gateway::InProcess>,
    _dir: tempfile::TempDir,
}

fn context(tenant: &str, user: &str, role: &str) -> RequestContext {
    RequestContext {
        request_id: "test".into(),
        client: "127.0.0.1:1".parse().unwrap(),
        tls: true,
        host: ParsedHost {
            kind: HostKind::WebApp {
                tenant: tenant.into(),
                app: "console".into(),
                provider: None,
            },
            region: "eu1".into(),
            env: None,
            domain: "portico.localhost".into(),
        },
        original_host: format!("{tenant}-console.eu1.portico.localhost"),
        original_target: "/".into(),
        tenant: Some(tenant.into()),
        session: None,
        principal: Some(Principal {
            tenant: tenant.into(),
            subject: user.into(),
            scopes: vec![format!("role:{role}")],
        }),
    }
}

impl World {
    async fn new(with_identity: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        let relay = remote_services(store.clone());
        store
            .replace_origin(
                Origin::File,
                &Registry {
                    tenants: ["acme", "other"]
                        .map(|name| Tenant {
                            name: name.into(),
                            origin: Origin::File,
                        })
                        .to_vec(),
                    webapps: vec![WebApp {
                        name: "othersecretapp".into(),
                        provider: None,
                        backend: "http://127.0.0.1:9".into(),
                        tenants: vec!["other".into()],
                        cache_control: None,
                        websockets: Vec::new(),
                        auth: portico_store::Auth::Session,
                        scopes: Vec::new(),
                        origin: Origin::File,
                    }],
                    apis: Vec::new(),
                },
            )
            .await
            .unwrap();
        let console = console_app(ConsoleOptions {
            remote_services: relay.clone(),
            identity_admin: with_identity.then(identity_admin),
            store,
            allow_list: AllowList {
                port: 443,
                rows: vec![AllowRow {
                    domain: "portico.localhost".into(),
                    region: "eu1".into(),
                    host: "wss.eu1.vpnrts.portico.localhost".into(),
                    port: 443,
                    protocol: "WSS (WebSocket over TLS)".into(),
                    who: "endpoint agents".into(),
                }],
                advice: vec!["No TLS inspection for the vpnrts hosts.".into()],
            },
        });
        let world = World {
            console,
            relay,
            _dir: dir,
        };
        world.seed().await;
        world
    }

    /// A call to the relay API as `user` of `tenant` with `role`.
    async fn api(&self, who: (&str, &str, &str), method: Method, path: &str, body: Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(full(body.to_string()))
            .unwrap();
        request
            .extensions_mut()
            .insert(context(who.0, who.1, who.2));
        let response = self.relay.call(request).await;
        let status = response.status();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert!(status.is_success(), "{path}: {status} {text:?}");
    }

    async fn seed(&self) {
        let admin = ("acme", "ada", "admin");
        let post = |path: &'static str, body: Value| self.api(admin, Method::POST, path, body);
        post("/sites", json!({"name": "plant"})).await;
        post("/sites", json!({"name": "line1", "parent": "plant"})).await;
        post("/sites", json!({"name": "yard"})).await;
        post(
            "/devices",
            json!({"name": "press-1", "site": "plant", "description": HOSTILE}),
        )
        .await;
        post("/devices", json!({"name": "robot-7", "site": "line1"})).await;
        post("/devices", json!({"name": "crane-2", "site": "yard"})).await;
        post(
            "/applications",
            json!({"name": "press-ssh", "template": "ssh",
                   "mappings": [{"local_port": 2222, "target_host": "10.0.0.5", "target_port": 22}]}),
        )
        .await;
        post(
            "/assignments",
            json!({"device": "press-1", "application": "press-ssh"}),
        )
        .await;
        post(
            "/members",
            json!({"site": "plant", "user": "olga", "role": "site-owner"}),
        )
        .await;
        post(
            "/members",
            json!({"site": "line1", "user": "ulf", "role": "user"}),
        )
        .await;
        let other = ("other", "oscar", "admin");
        self.api(
            other,
            Method::POST,
            "/sites",
            json!({"name": "secret-site"}),
        )
        .await;
        self.api(
            other,
            Method::POST,
            "/devices",
            json!({"name": "secret-device", "site": "secret-site"}),
        )
        .await;
    }

    async fn page(&self, who: Option<(&str, &str, &str)>, path: &str) -> (StatusCode, String) {
        let mut request = Request::builder().uri(path).body(Body::default()).unwrap();
        if let Some((tenant, user, role)) = who {
            request.extensions_mut().insert(context(tenant, user, role));
        }
        let response = self.console.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

const ADMIN: (&str, &str, &str) = ("acme", "ada", "admin");
const OWNER: (&str, &str, &str) = ("acme", "olga", "site-owner");
const USER: (&str, &str, &str) = ("acme", "ulf", "user");

const PAGES: [&str; 7] = [
    "/",
    "/devices/robot-7",
    "/protocol-hub",
    "/connections",
    "/audit",
    "/network",
    "/admin",
];

/// The frame every page has (contract: lang, title, skip link, nav, main, one h1, the two
/// live regions, the embedded assets).
fn assert_frame(path: &str, html: &str) {
    for needle in [
        "<html lang=\"en\">",
        " · Portico</title>",
        "href=\"#main\"",
        "<nav id=\"console-nav\" aria-label=\"Console\">",
        "<main id=\"main\"",
        "<div id=\"result\" role=\"status\"></div>",
        "<div id=\"error\" role=\"alert\"></div>",
        "src=\"/assets/console.js\"",
        "href=\"/assets/console.css\"",
    ] {
        assert!(html.contains(needle), "{path}: {needle} in\n{html}");
    }
    assert_eq!(html.matches("<h1").count(), 1, "{path}: one h1");
}

#[tokio::test]
async fn every_page_renders_for_each_role_and_admin_pages_are_refused_to_others() {
    let world = World::new(true).await;
    for who in [ADMIN, OWNER, USER] {
        for path in PAGES {
            let (status, html) = world.page(Some(who), path).await;
            assert_frame(path, &html);
            let may = path != "/admin" || who.2 == "admin";
            if may {
                assert_eq!(status, StatusCode::OK, "{who:?} {path}\n{html}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{who:?} {path}");
                assert!(html.contains("may not use this page"), "{html}");
                assert!(!html.contains("data-action=\"add-user\""), "{html}");
            }
            // The navigation offers the administration to administrators only.
            assert_eq!(
                html.contains("href=\"/admin\""),
                who.2 == "admin",
                "{who:?} {path}"
            );
        }
    }
}

#[tokio::test]
async fn the_device_tree_nests_sites_and_shows_states_and_only_visible_devices() {
    let world = World::new(true).await;
    let (_, html) = world.page(Some(ADMIN), "/").await;
    for needle in [
        "<input id=\"search\"",
        "<ul id=\"tree\">",
        "<li data-site=\"plant\">",
        "<li data-site=\"line1\">",
        "<li data-device=\"press-1\"",
        "href=\"/devices/press-1\"",
        "<span class=\"state\" data-online=\"false\">offline</span>",
    ] {
        assert!(html.contains(needle), "{needle} in\n{html}");
    }
    // line1 is nested inside plant.
    let plant = html.find("data-site=\"plant\"").unwrap();
    let line1 = html.find("data-site=\"line1\"").unwrap();
    let yard = html.find("data-site=\"yard\"").unwrap();
    assert!(plant < line1 && line1 < yard, "{html}");
    // A user on line1 sees its device only.
    let (_, html) = world.page(Some(USER), "/").await;
    assert!(html.contains("data-device=\"robot-7\""), "{html}");
    assert!(
        !html.contains("press-1") && !html.contains("crane-2"),
        "{html}"
    );
    // A device the user may not see is refused by the API, so by the page.
    let (status, _) = world.page(Some(USER), "/devices/crane-2").await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
}

#[tokio::test]
async fn a_hostile_device_description_is_escaped_everywhere() {
    let world = World::new(true).await;
    for path in ["/", "/devices/press-1", "/admin"] {
        let (status, html) = world.page(Some(ADMIN), path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.contains("<script>alert"), "{path}\n{html}");
        if path != "/admin" {
            assert!(
                html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quoted&quot;"),
                "{path}\n{html}"
            );
        }
    }
}

#[tokio::test]
async fn no_page_shows_another_tenants_objects() {
    let world = World::new(true).await;
    for who in [ADMIN, OWNER, USER] {
        for path in PAGES {
            let (_, html) = world.page(Some(who), path).await;
            for secret in ["secret-site", "secret-device", "othersecretapp", "oscar"] {
                assert!(!html.contains(secret), "{who:?} {path}: {secret}");
            }
        }
    }
    let (status, _) = world.page(Some(ADMIN), "/devices/secret-device").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn actions_are_offered_by_role() {
    let world = World::new(true).await;
    let (_, admin_device) = world.page(Some(ADMIN), "/devices/press-1").await;
    assert!(
        admin_device.contains("<li data-app=\"press-ssh\">"),
        "{admin_device}"
    );
    assert!(admin_device.contains("data-action=\"connect\" data-app=\"press-ssh\""));
    assert!(admin_device.contains("<form data-action=\"assign\""));
    let (_, owner_device) = world.page(Some(OWNER), "/devices/press-1").await;
    assert!(owner_device.contains("<form data-action=\"assign\""));
    let (_, user_device) = world.page(Some(USER), "/devices/robot-7").await;
    assert!(
        !user_device.contains("data-action=\"assign\""),
        "{user_device}"
    );

    let (_, hub) = world.page(Some(ADMIN), "/protocol-hub").await;
    for needle in [
        "<table id=\"templates\">",
        "data-template=\"dtt-reverse\"",
        "<li data-application=\"press-ssh\">",
        "<form data-action=\"create-application\"",
        "name=\"local_port\"",
        "name=\"target_host\"",
        "name=\"target_port\"",
        "<select id=\"app-target-endpoint\" name=\"target_endpoint\"",
        "name=\"session_timeout_s\"",
        "<select id=\"hub-assign-device\" name=\"device\"",
    ] {
        assert!(hub.contains(needle), "{needle} in\n{hub}");
    }
    let (_, owner_hub) = world.page(Some(OWNER), "/protocol-hub").await;
    assert!(!owner_hub.contains("create-application"));
    assert!(owner_hub.contains("<form data-action=\"assign\""));
    let (_, user_hub) = world.page(Some(USER), "/protocol-hub").await;
    assert!(!user_hub.contains("<form data-action"), "{user_hub}");

    let (_, admin) = world.page(Some(ADMIN), "/admin").await;
    for needle in [
        "data-action=\"add-site\"",
        "data-action=\"add-device\"",
        "data-action=\"add-user\"",
        "data-action=\"set-member\"",
        "name=\"user_name\"",
        "data-action=\"add-endpoint\"",
        "data-action=\"add-client\"",
        "data-action=\"remove-user\" data-done=\"User removed; their sessions ended.\" data-user=\"ulf\"",
        "data-action=\"remove-client\" data-done=\"Client removed.\" data-client=\"cli-1\"",
        "<section id=\"registry\"",
    ] {
        assert!(admin.contains(needle), "{needle} in\n{admin}");
    }
    let (_, audit) = world.page(Some(ADMIN), "/audit").await;
    assert!(audit.contains("<table id=\"audit-trail\">") && audit.contains("id=\"csv\""));
    assert!(
        audit.contains("device.add"),
        "the trail lists the seeding\n{audit}"
    );
    let (_, user_audit) = world.page(Some(USER), "/audit").await;
    assert!(!user_audit.contains("audit-trail"));
    let (_, network) = world.page(Some(USER), "/network").await;
    assert!(network.contains("<table id=\"allow-list\">"));
    assert!(network.contains("wss.eu1.vpnrts.portico.localhost"));
    assert!(network.contains("No TLS inspection for the vpnrts hosts."));
}

#[tokio::test]
async fn without_the_identity_admin_api_the_administration_still_shows_the_rest() {
    let world = World::new(false).await;
    let (status, html) = world.page(Some(ADMIN), "/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("identity administration is not available"),
        "{html}"
    );
    assert!(html.contains("data-action=\"add-site\""));
}

#[tokio::test]
async fn signed_out_callers_unknown_pages_and_assets() {
    let world = World::new(true).await;
    let (status, html) = world.page(None, "/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!html.contains("href=\"/protocol-hub\""));
    let (status, _) = world.page(Some(USER), "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (path, kind) in [
        ("/assets/console.js", "text/javascript"),
        ("/assets/console.css", "text/css"),
    ] {
        let request = Request::builder().uri(path).body(Body::default()).unwrap();
        let response = world.console.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"));
    }
}
