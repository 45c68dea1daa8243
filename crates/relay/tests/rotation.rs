//! Endpoint credential rotation (two phases, without lock-out) and re-registration with a
//! new code, through the API's router with a store and an issuer that records withdrawals.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portico_relay::api::{
    remote_services_api_with, ApiOptions, Caller, ClientCaller, CredentialIssuer, Credentials,
    IssueFuture,
};
use portico_store::{ClientStanding, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Issues `{tenant}-ep-N` client ids and remembers what was withdrawn.
#[derive(Default)]
struct TestIssuer {
    next: AtomicU32,
    revoked: Mutex<Vec<String>>,
}

impl TestIssuer {
    fn revoked(&self) -> Vec<String> {
        self.revoked.lock().unwrap().clone()
    }
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

/// Who calls: a user (with a role), an OAuth client (client credentials), or nobody.
#[derive(Clone)]
enum Who {
    User(&'static str, &'static str),
    Client(&'static str, String),
    Nobody,
}

fn admin() -> Who {
    Who::User("ada", "admin")
}

fn client(id: &str) -> Who {
    Who::Client("abc", id.to_string())
}

struct Fixture {
    router: Router,
    store: Store,
    issuer: Arc<TestIssuer>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let issuer = Arc::new(TestIssuer::default());
    let router = remote_services_api_with(
        store.clone(),
        issuer.clone(),
        ApiOptions {
            clock: Arc::new(move || clock.fetch_add(1, Ordering::SeqCst)),
            registration_code_lifetime: Duration::from_secs(3600),
        },
    );
    Fixture {
        router,
        store,
        issuer,
        _dir: dir,
    }
}

impl Fixture {
    async fn call(
        &self,
        who: Who,
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
        // As the binary does: a user is a `Caller` with a role; a client is a `Caller`
        // without one, and a `ClientCaller`.
        match who {
            Who::User(subject, role) => {
                req.extensions_mut().insert(Caller {
                    tenant: "abc".into(),
                    subject: subject.into(),
                    role: role.into(),
                });
            }
            Who::Client(tenant, client_id) => {
                req.extensions_mut().insert(Caller {
                    tenant: tenant.into(),
                    subject: client_id.clone(),
                    role: String::new(),
                });
                req.extensions_mut().insert(ClientCaller {
                    tenant: tenant.into(),
                    client_id,
                });
            }
            Who::Nobody => {}
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

    async fn ok(&self, who: Who, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(who, method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// A site, a device and its endpoint `ep-press`, registered: returns its client id.
    async fn registered_endpoint(&self) -> String {
        self.ok(
            admin(),
            Method::POST,
            "/sites",
            Some(json!({"name": "plant"})),
        )
        .await;
        self.ok(
            admin(),
            Method::POST,
            "/devices",
            Some(json!({"name": "press-7", "site": "plant"})),
        )
        .await;
        let created = self
            .ok(
                admin(),
                Method::POST,
                "/endpoints",
                Some(json!({"name": "ep-press", "kind": "device", "device": "press-7"})),
            )
            .await;
        let code = created["registration_code"].as_str().unwrap();
        let registered = self
            .ok(
                Who::Nobody,
                Method::POST,
                "/register",
                Some(json!({"code": code})),
            )
            .await;
        registered["client_id"].as_str().unwrap().to_string()
    }

    async fn rotate(&self, who: Who) -> (StatusCode, Value) {
        self.call(who, Method::POST, "/credentials/rotate", None)
            .await
    }

    async fn confirm(&self, who: Who) -> (StatusCode, Value) {
        self.call(who, Method::POST, "/credentials/confirm", None)
            .await
    }

    /// Which of `ep-press`'s clients `client_id` is, if any (what the relay's sockets and
    /// the caller mapping accept).
    async fn standing(&self, client_id: &str) -> Option<ClientStanding> {
        self.store
            .endpoint_by_client("abc", client_id)
            .await
            .unwrap()
            .map(|(e, standing)| {
                assert_eq!(e.name, "ep-press");
                standing
            })
    }

    async fn audit_actions(&self) -> (Vec<String>, String) {
        let audit = self.ok(admin(), Method::GET, "/audit", None).await;
        let actions = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap().to_string())
            .collect();
        (actions, audit.to_string())
    }
}

#[tokio::test]
async fn rotation_keeps_both_clients_until_confirmed_then_withdraws_the_old() {
    let f = fixture().await;
    let first = f.registered_endpoint().await;
    assert_eq!(first, "abc-ep-0");

    let (s, rotated) = f.rotate(client(&first)).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let second = rotated["client_id"].as_str().unwrap().to_string();
    assert_eq!(second, "abc-ep-1");
    assert_eq!(rotated["client_secret"], "secret-1");
    // Both work meanwhile.
    assert_eq!(f.standing(&first).await, Some(ClientStanding::Current));
    assert_eq!(f.standing(&second).await, Some(ClientStanding::Pending));
    assert!(f.issuer.revoked().is_empty());
    // Pending credentials confirm before they rotate; the current ones cannot confirm.
    let (s, body) = f.rotate(client(&second)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");

    // A second rotation (the first one's answer was lost) withdraws the earlier pending client.
    let (s, rotated) = f.rotate(client(&first)).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let third = rotated["client_id"].as_str().unwrap().to_string();
    assert_eq!(f.issuer.revoked(), vec![second.clone()]);
    assert_eq!(f.standing(&second).await, None);
    let (s, body) = f.confirm(client(&first)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, body) = f.confirm(client(&second)).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a withdrawn pending client: {body}"
    );

    let (s, confirmed) = f.confirm(client(&third)).await;
    assert_eq!(s, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["client_id"], third.as_str());
    assert_eq!(f.issuer.revoked(), vec![second.clone(), first.clone()]);
    assert_eq!(f.standing(&first).await, None);
    assert_eq!(f.standing(&third).await, Some(ClientStanding::Current));
    let shown = f
        .ok(admin(), Method::GET, "/endpoints/ep-press", None)
        .await;
    assert_eq!(shown["client_id"], third.as_str());

    // The old client is nobody now: 403 as a caller.
    let (s, body) = f.rotate(client(&first)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, body) = f.confirm(client(&first)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    // Confirming again (a lost answer) is answered the same and changes nothing.
    let (s, again) = f.confirm(client(&third)).await;
    assert_eq!((s, &again["client_id"]), (StatusCode::OK, &json!(third)));
    assert_eq!(f.issuer.revoked().len(), 2);

    let (actions, text) = f.audit_actions().await;
    let count = |a: &str| actions.iter().filter(|x| x.as_str() == a).count();
    assert_eq!(count("endpoint.rotate"), 2, "{actions:?}");
    assert_eq!(count("endpoint.rotate.confirm"), 1, "{actions:?}");
    assert!(
        !text.contains("secret-"),
        "no secret in the audit trail: {text}"
    );
}

#[tokio::test]
async fn only_a_registered_endpoint_rotates_and_revocation_withdraws_the_pending_client() {
    let f = fixture().await;
    let first = f.registered_endpoint().await;

    let (s, body) = f.rotate(admin()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a user is no endpoint: {body}");
    let (s, _) = f.rotate(Who::Nobody).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = f.rotate(client("abc-some-app")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a client that is no endpoint's");
    let (s, _) = f.rotate(Who::Client("xyz", first.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another tenant's");
    assert_eq!(
        f.issuer.next.load(Ordering::SeqCst),
        1,
        "nothing was issued"
    );

    let (s, rotated) = f.rotate(client(&first)).await;
    assert_eq!(s, StatusCode::OK);
    let pending = rotated["client_id"].as_str().unwrap().to_string();
    f.ok(admin(), Method::POST, "/endpoints/ep-press/revoke", None)
        .await;
    let revoked = f.issuer.revoked();
    assert!(
        revoked.contains(&first) && revoked.contains(&pending),
        "{revoked:?}"
    );
    assert_eq!(f.standing(&first).await, None);
    assert_eq!(f.standing(&pending).await, None);
    let (s, _) = f.rotate(client(&first)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a revoked endpoint cannot rotate");
    let (s, _) = f.confirm(client(&pending)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "nor confirm");

    // Revocation is for good: no new code either.
    let (s, body) = f
        .call(admin(), Method::POST, "/endpoints/ep-press/code", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

#[tokio::test]
async fn a_new_code_registers_the_endpoint_again_and_withdraws_every_earlier_client() {
    let f = fixture().await;
    let first = f.registered_endpoint().await;
    let (_, rotated) = f.rotate(client(&first)).await;
    let pending = rotated["client_id"].as_str().unwrap().to_string();

    let (s, _) = f
        .call(
            Who::User("ursula", "user"),
            Method::POST,
            "/endpoints/ep-press/code",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "administrators only");
    let (s, _) = f
        .call(admin(), Method::POST, "/endpoints/nope/code", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, created) = f
        .call(admin(), Method::POST, "/endpoints/ep-press/code", None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let code = created["registration_code"].as_str().unwrap().to_string();
    assert_eq!(created["endpoint"]["state"], "registered");
    // Until the code is used, the device still works.
    assert_eq!(f.standing(&first).await, Some(ClientStanding::Current));
    assert_eq!(f.standing(&pending).await, Some(ClientStanding::Pending));

    let registered = f
        .ok(
            Who::Nobody,
            Method::POST,
            "/register",
            Some(json!({"code": code})),
        )
        .await;
    let fresh = registered["client_id"].as_str().unwrap().to_string();
    assert_eq!(registered["endpoint"], "ep-press");
    assert_eq!(f.standing(&fresh).await, Some(ClientStanding::Current));
    assert_eq!(f.standing(&first).await, None);
    assert_eq!(f.standing(&pending).await, None);
    let revoked = f.issuer.revoked();
    assert!(
        revoked.contains(&first) && revoked.contains(&pending),
        "{revoked:?}"
    );
    let (s, _) = f
        .call(
            Who::Nobody,
            Method::POST,
            "/register",
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the code works once");
    // The fresh credentials rotate as any others.
    let (s, _) = f.rotate(client(&fresh)).await;
    assert_eq!(s, StatusCode::OK);

    let (actions, text) = f.audit_actions().await;
    assert!(actions.iter().any(|a| a == "endpoint.code"), "{actions:?}");
    assert!(!text.contains(&code), "no code in the audit trail");
}

#[tokio::test]
async fn the_openapi_document_names_the_rotation_resources() {
    let f = fixture().await;
    let doc = f.ok(Who::Nobody, Method::GET, "/openapi.json", None).await;
    for path in [
        "/credentials/rotate",
        "/credentials/confirm",
        "/endpoints/{name}/code",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path}");
    }
}
