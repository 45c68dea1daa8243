//! The identity admin API through its router, with the caller the gateway would insert:
//! every call, the refusals for every role but a tenant `admin`, self removal and
//! demotion, endpoint clients, tenant isolation, and no hash or secret in a list. Each test
//! runs on SQLite, and on PostgreSQL too when `PORTICO_TEST_POSTGRES_URL` names a server.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use portico_identity::http::{admin_api, AdminCaller};
use portico_identity::{Identity, IdentityConfig, Role};
use portico_store::{EndpointBinding, EndpointRecord, EndpointState, SiteRecord, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));

/// A database for one test: a SQLite file, or a fresh PostgreSQL database dropped at the end.
struct Db {
    label: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            let _ = std::process::Command::new("psql")
                .args([
                    server.as_str(),
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn databases() -> Vec<Db> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Db {
        label: "SQLite",
        url: format!("sqlite://{}/p.db", dir.path().display()),
        _dir: Some(dir),
        postgres: None,
    }];
    match std::env::var("PORTICO_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(server) => {
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let created = std::process::Command::new("psql")
                .args([
                    server.as_str(),
                    "-q",
                    "-c",
                    &format!("CREATE DATABASE {name}"),
                ])
                .output()
                .expect("psql runs");
            assert!(
                created.status.success(),
                "{}",
                String::from_utf8_lossy(&created.stderr)
            );
            let (base, _) = server.rsplit_once('/').unwrap();
            out.push(Db {
                label: "PostgreSQL",
                url: format!("{base}/{name}"),
                _dir: None,
                postgres: Some((server, name)),
            });
        }
        None => assert!(
            std::env::var("PORTICO_REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
            "PORTICO_REQUIRE_POSTGRES=1 but PORTICO_TEST_POSTGRES_URL is not set"
        ),
    }
    out
}

struct Fixture {
    identity: Identity,
    store: Store,
    app: Router,
}

/// Tenants a (admin ada, site owner sol, user uma, a device account) and b (admin bea).
async fn fixture(db: &Db) -> Fixture {
    eprintln!("-- on {}", db.label);
    let store = Store::open(&db.url).await.unwrap();
    let config = IdentityConfig {
        session_cache: Duration::ZERO,
        ..IdentityConfig::default()
    };
    let identity = Identity::open(
        store.clone(),
        config,
        "https://gateway.eu1.portico.localhost",
    )
    .await
    .unwrap();
    for (tenant, name, role) in [
        ("a", "ada", Role::Admin),
        ("a", "sol", Role::SiteOwner),
        ("a", "uma", Role::User),
        ("a", "press-7-device", Role::Device),
        ("b", "bea", Role::Admin),
    ] {
        identity
            .add_user(tenant, name, role, PASSWORD)
            .await
            .unwrap();
    }
    Fixture {
        app: admin_api(identity.clone()),
        identity,
        store,
    }
}

fn caller(tenant: &str, subject: &str, role: &str) -> Option<AdminCaller> {
    Some(AdminCaller {
        tenant: tenant.into(),
        subject: subject.into(),
        role: role.into(),
    })
}

fn ada() -> Option<AdminCaller> {
    caller("a", "ada", "admin")
}

fn bea() -> Option<AdminCaller> {
    caller("b", "bea", "admin")
}

impl Fixture {
    async fn call(
        &self,
        who: Option<AdminCaller>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let mut request = request
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        if let Some(who) = who {
            request.extensions_mut().insert(who);
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn names(&self, who: Option<AdminCaller>) -> Vec<String> {
        let (status, users) = self.call(who, Method::GET, "/users", None).await;
        assert_eq!(status, StatusCode::OK, "{users}");
        users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    }

    async fn client_ids(&self, who: Option<AdminCaller>) -> Vec<String> {
        let (status, clients) = self.call(who, Method::GET, "/clients", None).await;
        assert_eq!(status, StatusCode::OK, "{clients}");
        clients
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn new_client(&self, who: Option<AdminCaller>, confidential: bool) -> Value {
        let grants = if confidential {
            json!(["client_credentials"])
        } else {
            json!(["authorization_code", "refresh_token"])
        };
        let (status, created) = self
            .call(
                who,
                Method::POST,
                "/clients",
                Some(
                    json!({"name": "line dashboard", "confidential": confidential,
                            "grant_types": grants, "scopes": ["dashboards"],
                            "redirect_uris": ["https://dash.example/cb"]}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["status"], want.as_u16(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn an_admin_manages_the_tenants_users() {
    for db in databases() {
        let f = fixture(&db).await;
        // Device accounts are not people: not listed here.
        assert_eq!(f.names(ada()).await, ["ada", "sol", "uma"]);
        let (_, users) = f.call(ada(), Method::GET, "/users", None).await;
        for user in users.as_array().unwrap() {
            let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["created_ms", "name", "role"], "{user}");
        }

        let (status, added) = f
            .call(
                ada(),
                Method::POST,
                "/users",
                Some(json!({"name": "otto", "role": "site-owner", "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["name"], "otto");
        assert_eq!(added["role"], "site-owner");
        assert!(added["created_ms"].as_i64().unwrap() > 0);
        assert!(added.get("password_hash").is_none());
        f.identity
            .check_password("a", "otto", PASSWORD, CLIENT)
            .await
            .unwrap();

        let (status, body) = f
            .call(
                ada(),
                Method::POST,
                "/users",
                Some(json!({"name": "otto", "role": "user", "password": PASSWORD})),
            )
            .await;
        assert_error(status, &body, StatusCode::CONFLICT);
        for bad in [
            json!({"name": "olaf", "role": "operator", "password": PASSWORD}),
            json!({"name": "olaf", "role": "device", "password": PASSWORD}),
            json!({"name": "olaf", "role": "user", "password": "short"}),
            json!({"name": "Olaf!", "role": "user", "password": PASSWORD}),
            json!({"name": "olaf", "role": "user", "password": PASSWORD, "admin": true}),
            json!({"name": "olaf", "role": "user"}),
        ] {
            let (status, body) = f
                .call(ada(), Method::POST, "/users", Some(bad.clone()))
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
        }
        assert_eq!(f.names(ada()).await, ["ada", "otto", "sol", "uma"]);

        // A new role ends the user's sessions; a new password works at once.
        let login = f
            .identity
            .login("a", "otto", PASSWORD, CLIENT)
            .await
            .unwrap();
        let (status, changed) = f
            .call(
                ada(),
                Method::PUT,
                "/users/otto",
                Some(json!({"role": "user", "password": "another fine password"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["role"], "user");
        assert!(f
            .identity
            .peek_session(&login.session_id.0)
            .await
            .unwrap()
            .is_none());
        assert!(f
            .identity
            .check_password("a", "otto", PASSWORD, CLIENT)
            .await
            .is_err());
        let user = f
            .identity
            .check_password("a", "otto", "another fine password", CLIENT)
            .await
            .unwrap();
        assert_eq!(user.role, "user");
        let (status, body) = f
            .call(
                ada(),
                Method::PUT,
                "/users/otto",
                Some(json!({"role": "root"})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = f
            .call(
                ada(),
                Method::PUT,
                "/users/otto",
                Some(json!({"password": "short"})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = f
            .call(
                ada(),
                Method::PUT,
                "/users/nobody",
                Some(json!({"role": "user"})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = f
            .call(
                ada(),
                Method::PUT,
                "/users/press-7-device",
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);

        // Removing ends the user's sessions.
        let login = f
            .identity
            .login("a", "otto", "another fine password", CLIENT)
            .await
            .unwrap();
        let (status, body) = f.call(ada(), Method::DELETE, "/users/otto", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(f
            .identity
            .peek_session(&login.session_id.0)
            .await
            .unwrap()
            .is_none());
        assert_eq!(f.names(ada()).await, ["ada", "sol", "uma"]);
        let (status, body) = f.call(ada(), Method::DELETE, "/users/otto", None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = f
            .call(ada(), Method::DELETE, "/users/press-7-device", None)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        assert!(f.store.user("a", "press-7-device").await.unwrap().is_some());
        f.store.close().await;
    }
}

#[tokio::test]
async fn an_admin_cannot_remove_or_demote_themselves() {
    for db in databases() {
        let f = fixture(&db).await;
        for role in ["site-owner", "user"] {
            let (status, body) = f
                .call(
                    ada(),
                    Method::PUT,
                    "/users/ada",
                    Some(json!({"role": role})),
                )
                .await;
            assert_error(status, &body, StatusCode::CONFLICT);
            assert!(body["message"]
                .as_str()
                .unwrap()
                .contains("another administrator"));
        }
        let (status, body) = f.call(ada(), Method::DELETE, "/users/ada", None).await;
        assert_error(status, &body, StatusCode::CONFLICT);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("another administrator"));
        assert_eq!(
            f.store.user("a", "ada").await.unwrap().unwrap().role,
            "admin"
        );
        // Their own password, and staying admin, are fine.
        let (status, body) = f
            .call(
                ada(),
                Method::PUT,
                "/users/ada",
                Some(json!({"role": "admin", "password": "a new long password"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Another administrator may demote them.
        f.call(
            ada(),
            Method::POST,
            "/users",
            Some(json!({"name": "abe", "role": "admin", "password": PASSWORD})),
        )
        .await;
        let (status, body) = f
            .call(
                caller("a", "abe", "admin"),
                Method::PUT,
                "/users/ada",
                Some(json!({"role": "user"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["role"], "user");
        f.store.close().await;
    }
}

#[tokio::test]
async fn an_admin_manages_the_tenants_clients() {
    for db in databases() {
        let f = fixture(&db).await;
        assert!(f.client_ids(ada()).await.is_empty());
        let confidential = f.new_client(ada(), true).await;
        let id = confidential["client_id"].as_str().unwrap().to_string();
        let secret = confidential["client_secret"].as_str().unwrap().to_string();
        assert!(secret.len() >= 32);
        let public = f.new_client(ada(), false).await;
        assert!(public["client_secret"].is_null());
        let public_id = public["client_id"].as_str().unwrap().to_string();

        let (_, clients) = f.call(ada(), Method::GET, "/clients", None).await;
        let text = clients.to_string();
        assert!(!text.contains(&secret), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let listed = clients
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == id.as_str())
            .unwrap();
        assert_eq!(
            *listed,
            json!({"client_id": id, "name": "line dashboard", "confidential": true,
                   "grant_types": ["client_credentials"], "scopes": ["dashboards"],
                   "redirect_uris": ["https://dash.example/cb"],
                   "created_ms": listed["created_ms"]})
        );
        assert!(listed["created_ms"].as_i64().unwrap() > 0);

        for bad in [
            json!({"name": "x", "confidential": true, "grant_types": ["password"]}),
            json!({"name": "x", "confidential": false, "grant_types": ["client_credentials"]}),
            json!({"name": "x", "confidential": true, "grant_types": ["client_credentials"], "scopes": ["role:admin"]}),
            json!({"name": "x", "confidential": true, "grant_types": ["client_credentials"], "scopes": ["portico"]}),
            json!({"name": "", "confidential": true, "grant_types": ["client_credentials"]}),
            json!({"name": "x", "confidential": true, "grant_types": []}),
            json!({"name": "x", "confidential": false, "grant_types": ["authorization_code"], "redirect_uris": ["javascript:alert(1)"]}),
            json!({"name": "x", "grant_types": ["client_credentials"]}),
        ] {
            let (status, body) = f
                .call(ada(), Method::POST, "/clients", Some(bad.clone()))
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST);
        }

        // The client of a Remote Services endpoint goes only with the endpoint.
        f.store
            .add_site(&SiteRecord {
                tenant: "a".into(),
                name: "hall".into(),
                parent: None,
                created_ms: 1,
            })
            .await
            .unwrap();
        f.store
            .add_endpoint(&EndpointRecord {
                tenant: "a".into(),
                name: "ep-press".into(),
                binding: EndpointBinding::ServiceSite("hall".into()),
                state: EndpointState::Pending,
                code_hash: None,
                code_expires_ms: None,
                client_id: None,
                created_ms: 1,
                registered_ms: None,
                revoked_ms: None,
            })
            .await
            .unwrap();
        f.store
            .set_endpoint_credentials("a", "ep-press", &id, 2)
            .await
            .unwrap()
            .unwrap();
        let (status, body) = f
            .call(ada(), Method::DELETE, &format!("/clients/{id}"), None)
            .await;
        assert_error(status, &body, StatusCode::CONFLICT);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("revoke the endpoint instead"));
        assert!(f.store.oauth_client(&id).await.unwrap().is_some());

        let (status, body) = f
            .call(
                ada(),
                Method::DELETE,
                &format!("/clients/{public_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(f.store.oauth_client(&public_id).await.unwrap().is_none());
        let (status, body) = f
            .call(
                ada(),
                Method::DELETE,
                &format!("/clients/{public_id}"),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        assert_eq!(f.client_ids(ada()).await, [id]);
        f.store.close().await;
    }
}

#[tokio::test]
async fn only_a_tenant_admin_may_call() {
    for db in databases() {
        let f = fixture(&db).await;
        let client = f.new_client(ada(), true).await["client_id"]
            .as_str()
            .unwrap()
            .to_string();
        let calls = [
            (Method::GET, "/users".to_string(), None),
            (
                Method::POST,
                "/users".to_string(),
                Some(json!({"name": "otto", "role": "admin", "password": PASSWORD})),
            ),
            (
                Method::PUT,
                "/users/uma".to_string(),
                Some(json!({"role": "admin"})),
            ),
            (Method::DELETE, "/users/uma".to_string(), None),
            (Method::GET, "/clients".to_string(), None),
            (
                Method::POST,
                "/clients".to_string(),
                Some(
                    json!({"name": "x", "confidential": true, "grant_types": ["client_credentials"]}),
                ),
            ),
            (Method::DELETE, format!("/clients/{client}"), None),
        ];
        let refused = [
            (caller("a", "sol", "site-owner"), StatusCode::FORBIDDEN),
            (caller("a", "uma", "user"), StatusCode::FORBIDDEN),
            (
                caller("management", "operator", "operator"),
                StatusCode::FORBIDDEN,
            ),
            (caller("a", "operator", "operator"), StatusCode::FORBIDDEN),
            (caller("a", "a-client", ""), StatusCode::FORBIDDEN),
            (None, StatusCode::UNAUTHORIZED),
        ];
        for (who, want) in refused {
            for (method, path, body) in &calls {
                let (status, answer) = f
                    .call(who.clone(), method.clone(), path, body.clone())
                    .await;
                assert_error(status, &answer, want);
            }
        }
        // Nothing changed.
        assert_eq!(f.names(ada()).await, ["ada", "sol", "uma"]);
        assert_eq!(
            f.store.user("a", "uma").await.unwrap().unwrap().role,
            "user"
        );
        assert_eq!(f.client_ids(ada()).await, [client]);
        f.store.close().await;
    }
}

#[tokio::test]
async fn tenants_never_see_each_others_users_or_clients() {
    for db in databases() {
        let f = fixture(&db).await;
        let a_client = f.new_client(ada(), true).await["client_id"]
            .as_str()
            .unwrap()
            .to_string();
        let b_client = f.new_client(bea(), true).await["client_id"]
            .as_str()
            .unwrap()
            .to_string();

        assert_eq!(f.names(bea()).await, ["bea"]);
        assert_eq!(f.client_ids(bea()).await, std::slice::from_ref(&b_client));
        assert_eq!(f.client_ids(ada()).await, std::slice::from_ref(&a_client));

        let (status, body) = f.call(bea(), Method::DELETE, "/users/uma", None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = f
            .call(
                bea(),
                Method::PUT,
                "/users/uma",
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = f
            .call(bea(), Method::DELETE, &format!("/clients/{a_client}"), None)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        assert_eq!(
            f.store.user("a", "uma").await.unwrap().unwrap().role,
            "user"
        );
        assert!(f.store.oauth_client(&a_client).await.unwrap().is_some());

        // The same user name in another tenant is another user.
        let (status, body) = f
            .call(
                bea(),
                Method::POST,
                "/users",
                Some(json!({"name": "uma", "role": "user", "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, _) = f.call(bea(), Method::DELETE, "/users/uma", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(f.store.user("a", "uma").await.unwrap().is_some());
        f.store.close().await;
    }
}
