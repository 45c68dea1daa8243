//! The device REST API on a real SQLite store, with a fake [`Accounts`] (Basic
//! credentials → callers; issued device users can log in at once) and a [`Notify`] that
//! records every change.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use portico_realtime::{Accounts, AuthError, Caller, Change, DeviceCredentials, Notify};
use portico_store::Store;
use serde_json::Value;
use tower::ServiceExt;

/// `Basic base64(tenant/user:password)`.
pub fn basic(tenant: &str, user: &str, password: &str) -> String {
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{tenant}/{user}:{password}"));
    format!("Basic {token}")
}

pub const THROTTLED: &str = "Basic throttled";

#[derive(Default)]
pub struct FakeAccounts {
    users: Mutex<HashMap<String, Caller>>,
    issued: Mutex<u32>,
}

impl FakeAccounts {
    /// Adds a user and returns its `Authorization` header value.
    pub fn add(&self, tenant: &str, user: &str, role: &str) -> String {
        let header = basic(tenant, user, &format!("pw-{user}"));
        self.users.lock().unwrap().insert(
            header.clone(),
            Caller {
                tenant: tenant.into(),
                user: user.into(),
                role: role.into(),
            },
        );
        header
    }
}

impl Accounts for FakeAccounts {
    fn authenticate<'a>(
        &'a self,
        authorization: &'a str,
        _client: IpAddr,
    ) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async move {
            if authorization == THROTTLED {
                return Err(AuthError::Throttled {
                    retry_after: Duration::from_secs(7),
                });
            }
            self.users
                .lock()
                .unwrap()
                .get(authorization)
                .cloned()
                .ok_or_else(|| AuthError::Invalid("wrong user name or password".into()))
        })
    }

    fn issue_device_credentials<'a>(
        &'a self,
        tenant: &'a str,
        external_id: &'a str,
    ) -> BoxFuture<'a, Result<DeviceCredentials, AuthError>> {
        Box::pin(async move {
            let n = {
                let mut issued = self.issued.lock().unwrap();
                *issued += 1;
                *issued
            };
            let username = format!("device_{external_id}");
            let password = format!("generated-{n}-{}", uuid_like(n));
            self.users.lock().unwrap().insert(
                basic(tenant, &username, &password),
                Caller {
                    tenant: tenant.into(),
                    user: username.clone(),
                    role: "device".into(),
                },
            );
            Ok(DeviceCredentials {
                tenant: tenant.into(),
                username,
                password,
            })
        })
    }
}

fn uuid_like(n: u32) -> String {
    format!("{:08x}", n.wrapping_mul(2_654_435_761))
}

#[derive(Default)]
pub struct RecordingNotify {
    pub changes: Mutex<Vec<Change>>,
}

impl RecordingNotify {
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap())
    }
}

impl Notify for RecordingNotify {
    fn publish(&self, change: Change) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.changes.lock().unwrap().push(change) })
    }
}

pub struct Api {
    pub router: Router,
    pub store: Store,
    pub accounts: Arc<FakeAccounts>,
    pub notify: Arc<RecordingNotify>,
    /// An `admin` of tenant `acme`.
    pub admin: String,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// Asserts an error answer and returns its `error` code.
    pub fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(self.body["info"].is_string(), "{}", self.body);
        self.body["error"].as_str().unwrap().to_string()
    }
}

impl Api {
    pub async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        let accounts = Arc::new(FakeAccounts::default());
        let notify = Arc::new(RecordingNotify::default());
        let admin = accounts.add("acme", "admin", "admin");
        let router =
            portico_realtime::rest::router(store.clone(), accounts.clone(), notify.clone());
        Api {
            router,
            store,
            accounts,
            notify,
            admin,
            _dir: dir,
        }
    }

    /// Sends a request with `headers` (name, value) and an optional raw body.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "southgate.eu1.portico.localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A JSON request as `auth`, with `application/json`.
    pub async fn call(&self, method: Method, uri: &str, auth: &str, body: Option<Value>) -> Reply {
        let mut headers = vec![("authorization", auth)];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.send(
            method,
            uri,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    pub async fn get(&self, uri: &str, auth: &str) -> Reply {
        self.call(Method::GET, uri, auth, None).await
    }

    pub async fn post(&self, uri: &str, auth: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, auth, Some(body)).await
    }

    pub async fn put(&self, uri: &str, auth: &str, body: Value) -> Reply {
        self.call(Method::PUT, uri, auth, Some(body)).await
    }

    /// Creates a device managed object as `auth` and returns its id.
    pub async fn device(&self, auth: &str, name: &str) -> String {
        let reply = self
            .post(
                "/inventory/managedObjects",
                auth,
                serde_json::json!({"name": name, "c8y_IsDevice": {}, "c8y_SupportedOperations": ["c8y_Restart"]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// Every item of a list, paging with `currentPage` until the empty page, as a client
    /// does; at most `max_pages` pages.
    pub async fn all_pages(
        &self,
        uri: &str,
        key: &str,
        auth: &str,
        page_size: usize,
    ) -> Vec<Value> {
        let sep = if uri.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 1..=100 {
            let reply = self
                .get(
                    &format!("{uri}{sep}pageSize={page_size}&currentPage={page}"),
                    auth,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let items = reply.body[key].as_array().unwrap().clone();
            if items.is_empty() {
                return out;
            }
            assert!(items.len() <= page_size);
            out.extend(items);
        }
        panic!("{uri}: no empty page within 100 pages");
    }
}
