//! The Remote Services API through its router: each role's allowed and refused actions,
//! tenant isolation, one-time registration codes, connection timeouts and the audit trail.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portico_relay::api::{
    remote_services_api_with, ApiOptions, Caller, CredentialIssuer, Credentials, IssueFuture,
};
use portico_store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Issues `{tenant}-ep-N` client ids and remembers what was revoked.
#[derive(Default)]
struct TestIssuer {
    next: AtomicU32,
    revoked: Mutex<Vec<String>>,
}

impl CredentialIssuer for TestIssuer {
    fn issue<'a>(&'a self, tenant: &'a str, _endpoint: &'a str) -> IssueFuture<'a, Credentials> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(Credentials {
                client_id: format!("{tenant}-ep-{n}"),
                client_secret: format!("secret-{n}"),
            })
        })
    }

    fn revoke<'a>(&'a self, _tenant: &'a str, client_id: &'a str) -> IssueFuture<'a, ()> {
        self.revoked.lock().unwrap().push(client_id.to_string());
        Box::pin(async { Ok(()) })
    }
}

struct Fixture {
    router: Router,
    clock: Arc<AtomicI64>,
    issuer: Arc<TestIssuer>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let c = clock.clone();
    let issuer = Arc::new(TestIssuer::default());
    let router = remote_services_api_with(
        store,
        issuer.clone(),
        ApiOptions {
            clock: Arc::new(move || c.load(Ordering::SeqCst)),
            registration_code_lifetime: Duration::from_secs(3600),
        },
    );
    Fixture {
        router,
        clock,
        issuer,
        _dir: dir,
    }
}

fn caller(tenant: &str, subject: &str, role: &str) -> Option<Caller> {
    Some(Caller {
        tenant: tenant.into(),
        subject: subject.into(),
        role: role.into(),
    })
}

impl Fixture {
    async fn call(
        &self,
        who: Option<Caller>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let mut req = req
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        if let Some(who) = who {
            req.extensions_mut().insert(who);
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn ok(
        &self,
        who: Option<Caller>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(who, method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// Tenant `abc`: sites plant > hall, other; device press-7 in hall with a registered
    /// endpoint; mill-2 in other; application ssh-press (timeout 120 s) assigned to press-7;
    /// owner olga owns plant; user ursula is a user of hall.
    async fn tenant_abc(&self) {
        let admin = || caller("abc", "ada", "admin");
        let post =
            |path: &'static str, body: Value| self.ok(admin(), Method::POST, path, Some(body));
        post("/sites", json!({"name": "plant"})).await;
        post("/sites", json!({"name": "hall", "parent": "plant"})).await;
        post("/sites", json!({"name": "other"})).await;
        post("/devices", json!({"name": "press-7", "site": "hall"})).await;
        post("/devices", json!({"name": "mill-2", "site": "other"})).await;
        let created = post(
            "/endpoints",
            json!({"name": "ep-press", "kind": "device", "device": "press-7"}),
        )
        .await;
        let code = created["registration_code"].as_str().unwrap().to_string();
        self.ok(None, Method::POST, "/register", Some(json!({"code": code})))
            .await;
        post(
            "/applications",
            json!({"name": "ssh-press", "template": "ssh", "session_timeout_s": 120,
                   "mappings": [{"local_port": 2222, "target_host": "10.0.0.7", "target_port": 22}]}),
        )
        .await;
        post(
            "/assignments",
            json!({"device": "press-7", "application": "ssh-press"}),
        )
        .await;
        post(
            "/members",
            json!({"site": "plant", "user": "olga", "role": "site-owner"}),
        )
        .await;
        post(
            "/members",
            json!({"site": "hall", "user": "ursula", "role": "user"}),
        )
        .await;
    }
}

#[tokio::test]
async fn each_role_is_allowed_and_refused_what_the_rules_say() {
    let f = fixture().await;
    f.tenant_abc().await;
    let owner = || caller("abc", "olga", "site-owner");
    let user = || caller("abc", "ursula", "user");
    let stranger = || caller("abc", "sam", "user");
    let operator = || caller("management", "operator", "operator");
    let op_in_abc = || caller("abc", "operator", "operator");

    // Only administrators manage.
    for who in [owner(), user(), op_in_abc()] {
        let (s, body) = f
            .call(
                who.clone(),
                Method::POST,
                "/sites",
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["status"], 403);
        assert_eq!(body["error"], "Forbidden");
        let (s, _) = f.call(who.clone(), Method::GET, "/audit", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = f.call(who, Method::GET, "/endpoints", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    // The operator has nothing inside a tenant.
    let (s, _) = f.call(op_in_abc(), Method::GET, "/templates", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = f.call(operator(), Method::GET, "/devices", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // No caller at all.
    let (s, _) = f.call(None, Method::GET, "/devices", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The catalogue is readable by every tenant role.
    let templates = f.ok(user(), Method::GET, "/templates", None).await;
    assert_eq!(templates.as_array().unwrap().len(), 11);

    // The owner of plant assigns on hall (a sub-site) but not on other.
    f.ok(
        owner(),
        Method::DELETE,
        "/assignments/press-7/ssh-press",
        None,
    )
    .await;
    f.ok(
        owner(),
        Method::POST,
        "/assignments",
        Some(json!({"device": "press-7", "application": "ssh-press"})),
    )
    .await;
    let (s, _) = f
        .call(
            owner(),
            Method::POST,
            "/assignments",
            Some(json!({"device": "mill-2", "application": "ssh-press"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A user does not assign, even on their site.
    let (s, _) = f
        .call(
            user(),
            Method::DELETE,
            "/assignments/press-7/ssh-press",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Users see and connect the devices of their sites only.
    let devices = f.ok(user(), Method::GET, "/devices", None).await;
    let names: Vec<_> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("press-7")]);
    let (s, _) = f.call(user(), Method::GET, "/devices/mill-2", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let open = json!({"device": "press-7", "application": "ssh-press"});
    let (s, _) = f
        .call(stranger(), Method::POST, "/connections", Some(open.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a user without the grant");
    let conn = f
        .ok(user(), Method::POST, "/connections", Some(open.clone()))
        .await;
    assert_eq!(conn["listeners"][0]["side"], "service");
    assert_eq!(conn["listeners"][0]["local_port"], 2222);
    let id = conn["id"].as_str().unwrap().to_string();
    // Another user neither sees nor ends it; the owner of the session and admins do.
    let (s, _) = f
        .call(owner(), Method::DELETE, &format!("/connections/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(f
        .ok(owner(), Method::GET, "/connections", None)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let ended = f
        .ok(user(), Method::DELETE, &format!("/connections/{id}"), None)
        .await;
    assert_eq!(ended["end_reason"], "ended");
    // An application not assigned to the device cannot be connected.
    let (s, body) = f
        .call(
            user(),
            Method::POST,
            "/connections",
            Some(json!({"device": "press-7", "application": "nope"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let f = fixture().await;
    f.tenant_abc().await;
    let xyz_admin = || caller("xyz", "zed", "admin");
    assert!(f
        .ok(xyz_admin(), Method::GET, "/devices", None)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert!(f
        .ok(xyz_admin(), Method::GET, "/sites", None)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert!(f
        .ok(xyz_admin(), Method::GET, "/applications", None)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let (s, body) = f
        .call(xyz_admin(), Method::GET, "/devices/press-7", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    let (s, _) = f
        .call(
            xyz_admin(),
            Method::POST,
            "/connections",
            Some(json!({"device": "press-7", "application": "ssh-press"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f
        .call(
            xyz_admin(),
            Method::POST,
            "/endpoints/ep-press/revoke",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A device of its own with the same name is another device.
    f.ok(
        xyz_admin(),
        Method::POST,
        "/sites",
        Some(json!({"name": "plant"})),
    )
    .await;
    f.ok(
        xyz_admin(),
        Method::POST,
        "/devices",
        Some(json!({"name": "press-7", "site": "plant"})),
    )
    .await;
    let (s, _) = f
        .call(
            xyz_admin(),
            Method::POST,
            "/assignments",
            Some(json!({"device": "press-7", "application": "ssh-press"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "abc's application is not xyz's");
    assert!(
        f.ok(xyz_admin(), Method::GET, "/audit", None)
            .await
            .as_array()
            .unwrap()
            .len()
            == 2
    );
}

#[tokio::test]
async fn a_registration_code_works_once_and_revoking_ends_connections() {
    let f = fixture().await;
    f.tenant_abc().await;
    let admin = || caller("abc", "ada", "admin");
    let created = f
        .ok(
            admin(),
            Method::POST,
            "/endpoints",
            Some(json!({"name": "ep-hq", "kind": "service", "site": "plant"})),
        )
        .await;
    assert_eq!(created["endpoint"]["state"], "pending");
    let code = created["registration_code"].as_str().unwrap().to_string();
    let listed = f
        .ok(admin(), Method::GET, "/endpoints", None)
        .await
        .to_string();
    assert!(!listed.contains(&code), "the code is shown once");

    let (s, _) = f
        .call(
            None,
            Method::POST,
            "/register",
            Some(json!({"code": "0".repeat(64)})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let reg = f
        .ok(None, Method::POST, "/register", Some(json!({"code": code})))
        .await;
    assert_eq!(
        (reg["tenant"].as_str(), reg["endpoint"].as_str()),
        (Some("abc"), Some("ep-hq"))
    );
    assert_eq!(reg["kind"], "service");
    assert!(reg["client_secret"]
        .as_str()
        .unwrap()
        .starts_with("secret-"));
    let (s, body) = f
        .call(None, Method::POST, "/register", Some(json!({"code": code})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "used twice: {body}");

    // An expired code does not work.
    let late = f
        .ok(
            admin(),
            Method::POST,
            "/endpoints",
            Some(json!({"name": "ep-late", "kind": "service", "user": "ursula"})),
        )
        .await;
    f.clock.fetch_add(3_600_000, Ordering::SeqCst);
    let (s, _) = f
        .call(
            None,
            Method::POST,
            "/register",
            Some(json!({"code": late["registration_code"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Revoking the device endpoint withdraws its credentials and ends its connections.
    let conn = f
        .ok(
            admin(),
            Method::POST,
            "/connections",
            Some(json!({"device": "press-7", "application": "ssh-press"})),
        )
        .await;
    let ep = f
        .ok(admin(), Method::POST, "/endpoints/ep-press/revoke", None)
        .await;
    assert_eq!(ep["state"], "revoked");
    assert_eq!(
        f.issuer.revoked.lock().unwrap().clone(),
        vec![ep["client_id"].as_str().unwrap().to_string()]
    );
    let id = conn["id"].as_str().unwrap();
    let after = f
        .ok(admin(), Method::GET, &format!("/connections/{id}"), None)
        .await;
    assert_eq!(after["end_reason"], "revoked");
    let (s, _) = f
        .call(
            admin(),
            Method::POST,
            "/connections",
            Some(json!({"device": "press-7", "application": "ssh-press"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "no registered endpoint on the device"
    );
}

#[tokio::test]
async fn connections_time_out_on_schedule_and_are_audited() {
    let f = fixture().await;
    f.tenant_abc().await;
    let admin = || caller("abc", "ada", "admin");
    let user = || caller("abc", "ursula", "user");
    let start = f.clock.load(Ordering::SeqCst);
    let conn = f
        .ok(
            user(),
            Method::POST,
            "/connections",
            Some(json!({"device": "press-7", "application": "ssh-press"})),
        )
        .await;
    assert_eq!(conn["started_ms"], start);
    assert_eq!(conn["ends_ms"], start + 120_000);
    let id = conn["id"].as_str().unwrap().to_string();

    f.clock.store(start + 119_999, Ordering::SeqCst);
    let open = f
        .ok(user(), Method::GET, "/connections?open=true", None)
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    f.clock.store(start + 200_000, Ordering::SeqCst);
    assert!(f
        .ok(user(), Method::GET, "/connections?open=true", None)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let timed_out = f
        .ok(user(), Method::GET, &format!("/connections/{id}"), None)
        .await;
    assert_eq!(timed_out["end_reason"], "timeout");
    assert_eq!(
        timed_out["ended_ms"],
        start + 120_000,
        "ended at its timeout, not when noticed"
    );

    let second = f
        .ok(
            user(),
            Method::POST,
            "/connections",
            Some(json!({"device": "press-7", "application": "ssh-press"})),
        )
        .await;
    // Records of the same millisecond have no order among them.
    f.clock.fetch_add(1, Ordering::SeqCst);
    f.ok(
        user(),
        Method::DELETE,
        &format!("/connections/{}", second["id"].as_str().unwrap()),
        None,
    )
    .await;

    let audit = f.ok(admin(), Method::GET, "/audit?limit=1000", None).await;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().into(),
                a["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    let count = |action: &str| {
        actions
            .iter()
            .filter(|(a, who)| a == action && who == "ursula")
            .count()
    };
    assert_eq!(count("connection.open"), 2, "{actions:?}");
    assert_eq!(count("connection.timeout"), 1, "{actions:?}");
    assert_eq!(count("connection.end"), 1, "{actions:?}");
    assert_eq!(actions[0].0, "connection.end", "newest first");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let f = fixture().await;
    f.tenant_abc().await;
    let admin = || caller("abc", "ada", "admin");
    for (body, needle) in [
        (
            json!({"name": "x", "template": "nope", "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "catalogue",
        ),
        (
            json!({"name": "x", "template": "ssh", "mappings": []}),
            "mappings",
        ),
        (
            json!({"name": "x", "template": "ssh", "mappings": [{"local_port": 0, "target_host": "h", "target_port": 1}]}),
            "ports",
        ),
        (
            json!({"name": "x", "template": "ssh", "mappings": [{"local_port": 1, "target_host": "a b", "target_port": 1}]}),
            "target_host",
        ),
        (
            json!({"name": "x", "template": "dtt-reverse", "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "target_endpoint",
        ),
        (
            json!({"name": "x", "template": "dtt-reverse", "target_endpoint": "ep-press", "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "service endpoint",
        ),
        (
            json!({"name": "x", "template": "ssh", "session_timeout_s": 5, "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "session_timeout_s",
        ),
        (
            json!({"name": "Bad Name", "template": "ssh", "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "name",
        ),
        (
            json!({"name": "x", "label": "two\nlines", "template": "ssh", "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "label",
        ),
        (
            json!({"name": "x", "label": "x".repeat(101), "template": "ssh", "mappings": [{"local_port": 1, "target_host": "h", "target_port": 1}]}),
            "label",
        ),
    ] {
        let (s, err) = f
            .call(admin(), Method::POST, "/applications", Some(body))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
        assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
    }
    let (s, err) = f
        .call(
            admin(),
            Method::POST,
            "/sites",
            Some(json!({"name": "plant"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{err}");
    let (s, err) = f
        .call(admin(), Method::POST, "/sites", Some(json!({"nam": "x"})))
        .await;
    assert_eq!(s.as_u16() / 100, 4, "{err}");
    assert!(err["message"].is_string());
    let (s, _) = f.call(admin(), Method::DELETE, "/sites/plant", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "a site with sub-sites stays");
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_resource() {
    let f = fixture().await;
    let doc = f.ok(None, Method::GET, "/openapi.json", None).await;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/sites",
        "/devices",
        "/endpoints",
        "/endpoints/{name}/revoke",
        "/register",
        "/templates",
        "/applications",
        "/assignments",
        "/members",
        "/connections",
        "/connections/{id}",
        "/audit",
    ] {
        assert!(paths.contains_key(path), "{path}");
    }
}

#[tokio::test]
async fn an_application_keeps_the_label_people_call_it_by() {
    let f = fixture().await;
    f.tenant_abc().await;
    let admin = || caller("abc", "ada", "admin");
    let made = f
        .ok(
            admin(),
            Method::POST,
            "/applications",
            Some(json!({"name": "tickets", "label": "  Ticketing Server Access ",
                        "template": "ssh",
                        "mappings": [{"local_port": 8443, "target_host": "10.0.0.8", "target_port": 22}]})),
        )
        .await;
    assert_eq!(made["label"], "Ticketing Server Access");
    let shown = f
        .ok(admin(), Method::GET, "/applications/tickets", None)
        .await;
    assert_eq!(shown["label"], "Ticketing Server Access");
    // Without one, the label is empty (shown as the name).
    let shown = f
        .ok(admin(), Method::GET, "/applications/ssh-press", None)
        .await;
    assert_eq!(shown["label"], "");
}
