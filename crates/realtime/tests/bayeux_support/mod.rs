//! What the Bayeux engine tests share: a store in a temporary directory, accounts that
//! know a few fixed credentials, and short-hands for requests and replies.
#![allow(dead_code)]

use futures_util::future::BoxFuture;
use portico_realtime::bayeux::{
    Bayeux, BayeuxLimits, BayeuxOptions, ConnectionType, Endpoint, Incoming, Message,
};
use portico_realtime::{Accounts, AuthError, Caller, DeviceCredentials};
use portico_store::Store;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// `Basic` credentials of a user of tenant `acme` who may follow every device of it (the
/// base64 is of `acme/device_1:pw`; its role is `user`).
pub const ACME_TOKEN: &str = "YWNtZS9kZXZpY2VfMTpwdw==";
/// `Basic` credentials of a user of tenant `globex`, likewise.
pub const GLOBEX_TOKEN: &str = "Z2xvYmV4L2RldmljZV8yOnB3";
/// `Basic` credentials of tenant `acme`'s device `device_7` (role `device`), which may
/// subscribe only to the managed objects it owns (`acme/device_7:pw`).
pub const ACME_DEVICE_TOKEN: &str = "YWNtZS9kZXZpY2VfNzpwdw==";
/// The bootstrap user's credentials.
pub const BOOTSTRAP_TOKEN: &str = "bWFuYWdlbWVudC9kZXZpY2Vib290c3RyYXA6cHc=";
/// A JWT-shaped token of tenant `acme`.
pub const ACME_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

pub struct FakeAccounts;

impl Accounts for FakeAccounts {
    fn authenticate<'a>(
        &'a self,
        authorization: &'a str,
        _client: IpAddr,
    ) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async move {
            let caller = |tenant: &str, user: &str, role: &str| Caller {
                tenant: tenant.into(),
                user: user.into(),
                role: role.into(),
            };
            match authorization {
                a if a == format!("Basic {ACME_TOKEN}") => Ok(caller("acme", "device_1", "user")),
                a if a == format!("Basic {GLOBEX_TOKEN}") => {
                    Ok(caller("globex", "device_2", "user"))
                }
                a if a == format!("Basic {ACME_DEVICE_TOKEN}") => {
                    Ok(caller("acme", "device_7", "device"))
                }
                a if a == format!("Bearer {ACME_JWT}") => {
                    Ok(caller("acme", "operator", "operator"))
                }
                a if a == format!("Basic {BOOTSTRAP_TOKEN}") => {
                    Ok(caller("management", "devicebootstrap", "device-bootstrap"))
                }
                "" => Err(AuthError::Missing),
                _ => Err(AuthError::Invalid("wrong credentials".into())),
            }
        })
    }

    fn issue_device_credentials<'a>(
        &'a self,
        _tenant: &'a str,
        _external_id: &'a str,
    ) -> BoxFuture<'a, Result<DeviceCredentials, AuthError>> {
        Box::pin(async { Err(AuthError::Unavailable("not in these tests".into())) })
    }
}

pub struct TestStore {
    pub store: Store,
    _dir: tempfile::TempDir,
}

pub async fn test_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/portico.db", dir.path().display()))
        .await
        .unwrap();
    TestStore { store, _dir: dir }
}

/// Short timeouts, so that holding and expiry take a fraction of a second.
pub fn fast_options() -> BayeuxOptions {
    BayeuxOptions {
        connect_timeout: Duration::from_millis(400),
        max_connect_timeout: Duration::from_millis(800),
        session_grace: Duration::from_millis(300),
    }
}

pub fn fast_limits() -> BayeuxLimits {
    BayeuxLimits {
        flush_interval: Duration::from_millis(100),
        ..BayeuxLimits::default()
    }
}

pub async fn engine(store: &Store, endpoint: Endpoint) -> Bayeux {
    engine_with(store, endpoint, fast_options(), fast_limits()).await
}

pub async fn engine_with(
    store: &Store,
    endpoint: Endpoint,
    options: BayeuxOptions,
    limits: BayeuxLimits,
) -> Bayeux {
    Bayeux::open_with_limits(
        store.clone(),
        endpoint,
        Arc::new(FakeAccounts),
        options,
        limits,
    )
    .await
    .unwrap()
}

pub fn incoming() -> Incoming {
    Incoming {
        authorization: None,
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        connection_type: ConnectionType::LongPolling,
    }
}

pub fn messages(body: Value) -> Vec<Message> {
    Bayeux::parse(body.to_string().as_bytes()).unwrap()
}

/// Sends `body` (an object or an array) and returns the reply array.
pub async fn send(bayeux: &Bayeux, body: Value) -> Vec<Value> {
    tokio::time::timeout(
        Duration::from_secs(10),
        bayeux.process(messages(body), &incoming()),
    )
    .await
    .expect("the engine answers within 10 s")
}

pub fn handshake_message(token: &str) -> Value {
    json!({
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "id": "h1",
        "ext": {"com.cumulocity.authn": {"token": token}},
    })
}

/// Handshakes with `token`'s credentials and returns the client id.
pub async fn handshake(bayeux: &Bayeux, token: &str) -> String {
    let reply = send(bayeux, handshake_message(token)).await;
    assert_eq!(reply[0]["successful"], true, "{reply:?}");
    reply[0]["clientId"].as_str().unwrap().to_owned()
}

pub fn connect_message(client_id: &str) -> Value {
    json!({"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling", "id": "c"})
}

pub async fn connect(bayeux: &Bayeux, client_id: &str) -> Vec<Value> {
    send(bayeux, connect_message(client_id)).await
}

pub async fn subscribe(bayeux: &Bayeux, client_id: &str, subscription: Value) -> Value {
    let reply = send(
        bayeux,
        json!({"channel": "/meta/subscribe", "clientId": client_id, "subscription": subscription, "id": "s"}),
    )
    .await;
    reply[0].clone()
}

/// A session past its first connect, subscribed to `channel`: its next connect is held.
pub async fn ready_session(bayeux: &Bayeux, token: &str, channel: &str) -> String {
    let id = handshake(bayeux, token).await;
    assert_eq!(
        subscribe(bayeux, &id, json!(channel)).await["successful"],
        true
    );
    assert_eq!(
        connect(bayeux, &id).await.last().unwrap()["successful"],
        true
    );
    id
}

/// The data of the event messages in a reply (those with a `data` member), in order.
pub fn event_data(reply: &[Value]) -> Vec<Value> {
    reply
        .iter()
        .filter(|m| m.get("data").is_some())
        .map(|m| m["data"].clone())
        .collect()
}
