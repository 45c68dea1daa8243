//! The platform operator's Registry page and its actions through the console's router:
//! the operator sees the whole registry and adds and removes entries through the console
//! routes, which go on to the registry API; tenant roles are refused; the registry API
//! itself still wants the admin token from anyone else.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use axum::Router;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use portico_console::network::AllowList;
use portico_console::{console_app, hash_admin_token, registry_api, ConsoleOptions};
use portico_gateway::auth::Principal;
use portico_gateway::routing::{HostKind, ParsedHost};
use portico_gateway::{from_tower, RequestContext};
use portico_store::{Api, Auth, Origin, Registry, Route, Store, Tenant, WebApp};
use serde_json::{json, Value};
use tower::ServiceExt;

const OPERATOR: (&str, &str, &str) = ("management", "operator", "operator");
const ADMIN: (&str, &str, &str) = ("acme", "ada", "admin");
const USER: (&str, &str, &str) = ("acme", "ulf", "user");
/// A tenant's principal claiming the operator's role: not the operator.
const FAKE_OPERATOR: (&str, &str, &str) = ("acme", "eve", "operator");

struct World {
    console: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

fn context((tenant, user, role): (&str, &str, &str)) -> RequestContext {
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

fn file_registry() -> Registry {
    Registry {
        tenants: vec![Tenant {
            name: "acme".into(),
            origin: Origin::File,
        }],
        webapps: vec![WebApp {
            name: "filedapp".into(),
            provider: None,
            backend: "http://127.0.0.1:9".into(),
            tenants: vec!["acme".into()],
            cache_control: None,
            websockets: Vec::new(),
            auth: Auth::Session,
            scopes: Vec::new(),
            origin: Origin::File,
        }],
        apis: vec![Api {
            name: "fleet".into(),
            provider: Some("xyz".into()),
            version: 2,
            backend: "http://127.0.0.1:9".into(),
            routes: vec![Route {
                pattern: "/trucks/**".into(),
                methods: vec!["GET".into()],
            }],
            tenants: vec!["acme".into()],
            auth: Auth::Bearer,
            scopes: vec!["fleet.read".into()],
            origin: Origin::File,
        }],
    }
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        store
            .replace_origin(Origin::File, &file_registry())
            .await
            .unwrap();
        let console = console_app(ConsoleOptions {
            // The tenant pages are not used here: an empty service.
            remote_services: from_tower(Router::new()),
            identity_admin: None,
            store: store.clone(),
            allow_list: AllowList {
                port: 443,
                rows: Vec::new(),
                advice: Vec::new(),
            },
        });
        World {
            console,
            store,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        who: (&str, &str, &str),
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(axum::body::Body::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            ))
            .unwrap();
        request.extensions_mut().insert(context(who));
        let response = self.console.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn page(&self, who: (&str, &str, &str), path: &str) -> (StatusCode, String) {
        self.send(who, Method::GET, path, None).await
    }

    async fn tenant_names(&self) -> Vec<String> {
        let registry = self.store.registry().await.unwrap();
        registry.tenants.into_iter().map(|t| t.name).collect()
    }
}

#[tokio::test]
async fn the_operator_sees_the_whole_registry_and_only_the_registry() {
    let world = World::new().await;
    let (status, html) = world.page(OPERATOR, "/registry").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for needle in [
        "<html lang=\"en\">",
        "<title>Gateway Registry · Portico</title>",
        "<nav id=\"console-nav\" aria-label=\"Console\">",
        "href=\"/registry\" aria-current=\"page\"",
        "<main id=\"main\"",
        "<div id=\"result\" role=\"status\"></div>",
        "<div id=\"error\" role=\"alert\"></div>",
        "<form data-action=\"add-tenant\"",
        "<form data-action=\"add-webapp\"",
        "<form data-action=\"add-api\"",
        "<tr data-tenant=\"acme\">",
        "<tr data-webapp=\"filedapp\">",
        "<tr data-api=\"fleet-xyz\" data-version=\"2\">",
        "<code>/trucks/**</code> GET",
        "bearer · fleet.read",
        "<code>http://127.0.0.1:9</code>",
        "<th scope=\"col\">Origin</th>",
        "<label for=\"api-routes\">",
    ] {
        assert!(html.contains(needle), "{needle} in\n{html}");
    }
    // Entries from the file are shown, not removable, and say why.
    assert!(!html.contains("data-action=\"remove-tenant\""), "{html}");
    assert!(!html.contains("data-action=\"remove-webapp\""), "{html}");
    assert!(!html.contains("data-action=\"remove-api\""), "{html}");
    assert!(html.contains("change the registry file"), "{html}");
    assert_eq!(html.matches("<h1").count(), 1);
    // The navigation has the Registry only.
    for other in ["href=\"/admin\"", "href=\"/network\"", "href=\"/audit\""] {
        assert!(!html.contains(other), "{other}\n{html}");
    }
    // The tenant pages are not the operator's: home goes to the Registry, the rest is 403.
    let (status, _) = world.page(OPERATOR, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for path in [
        "/admin",
        "/network",
        "/devices/x",
        "/protocol-hub",
        "/audit",
    ] {
        let (status, html) = world.page(OPERATOR, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(html.contains("Registry only"), "{path}\n{html}");
    }
}

#[tokio::test]
async fn the_operator_adds_and_removes_a_tenant_a_web_app_and_an_api() {
    let world = World::new().await;
    let post = |path: &'static str, body: Value| {
        let world = &world;
        async move { world.send(OPERATOR, Method::POST, path, Some(body)).await }
    };
    let (status, body) = post("/registry/api/tenants", json!({"name": "newco"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tenant = world.store.tenant("newco").await.unwrap().unwrap();
    assert_eq!(tenant.origin, Origin::Api);

    let (status, body) = post(
        "/registry/api/webapps",
        json!({"name": "shop", "backend": "http://10.0.0.5:8080/", "auth": "session",
               "tenants": ["newco"], "scopes": [], "websockets": ["/live"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(
        "/registry/api/apis",
        json!({"name": "orders", "version": 1, "backend": "http://10.0.0.6:9000",
               "routes": [{"pattern": "/orders/**", "methods": ["GET", "POST"]}],
               "auth": "bearer", "scopes": ["orders.read"], "tenants": ["newco"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The page lists them, each with its remove button.
    let (_, html) = world.page(OPERATOR, "/registry").await;
    for needle in [
        "data-action=\"remove-tenant\" data-done=\"Tenant removed.\" data-tenant=\"newco\"",
        "data-action=\"remove-webapp\" data-done=\"Web app removed.\" data-webapp=\"shop\"",
        "data-action=\"remove-api\" data-done=\"API removed.\" data-api=\"orders\" data-version=\"1\"",
        "<code>/orders/**</code> GET, POST",
        "/live",
    ] {
        assert!(html.contains(needle), "{needle} in\n{html}");
    }

    // Entries of the file are refused by the API (409), through the console too.
    let (status, body) = world
        .send(OPERATOR, Method::DELETE, "/registry/api/tenants/acme", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(world.tenant_names().await.contains(&"acme".to_string()));

    for path in [
        "/registry/api/apis/orders/v1",
        "/registry/api/webapps/shop",
        "/registry/api/tenants/newco",
    ] {
        let (status, body) = world.send(OPERATOR, Method::DELETE, path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}: {body}");
    }
    let registry = world.store.registry().await.unwrap();
    assert_eq!(world.tenant_names().await, ["acme"]);
    assert!(registry.webapps.iter().all(|w| w.name != "shop"));
    assert!(registry.apis.iter().all(|a| a.name != "orders"));
}

#[tokio::test]
async fn tenant_roles_are_refused_the_registry_page_and_its_actions() {
    let world = World::new().await;
    for who in [ADMIN, USER, FAKE_OPERATOR] {
        let (status, html) = world.page(who, "/registry").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who:?}");
        assert!(!html.contains("data-action=\"add-tenant\""), "{html}");
        let (status, body) = world
            .send(
                who,
                Method::POST,
                "/registry/api/tenants",
                Some(json!({"name": "sneaky"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who:?}: {body}");
        let (status, _) = world
            .send(who, Method::GET, "/registry/api/tenants", None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who:?}");
    }
    // Tenant administrators keep their pages, without the operator's Registry in the nav.
    let (status, html) = world.page(ADMIN, "/network").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("href=\"/registry\""), "{html}");
    assert_eq!(world.tenant_names().await, ["acme"]);
}

#[tokio::test]
async fn the_registry_api_without_the_console_still_wants_the_admin_token() {
    let world = World::new().await;
    world
        .store
        .set_admin_token_hash(&hash_admin_token("ptk_right"))
        .await
        .unwrap();
    let api = registry_api(world.store.clone());
    let add = |token: Option<&str>, with_operator_context: bool| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/tenants")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut request = request
            .body(axum::body::Body::from(
                json!({"name": "viatoken"}).to_string(),
            ))
            .unwrap();
        if with_operator_context {
            // The gateway's context of an operator's session is not the console's vouching.
            request.extensions_mut().insert(context(OPERATOR));
        }
        api.clone().oneshot(request)
    };
    let status = |r: Result<http::Response<axum::body::Body>, _>| r.unwrap().status();
    assert_eq!(status(add(None, false).await), StatusCode::UNAUTHORIZED);
    assert_eq!(status(add(None, true).await), StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(add(Some("ptk_wrong"), true).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(add(Some("ptk_right"), false).await),
        StatusCode::CREATED
    );
    assert!(world.tenant_names().await.contains(&"viatoken".to_string()));
}
