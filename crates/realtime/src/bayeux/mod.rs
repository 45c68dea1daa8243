//! The Bayeux 1.0 server (DC-2): one [`Bayeux`] per notification endpoint
//! (`/notification/operations`, `/notification/realtime`). It knows messages, channels,
//! client sessions and their queues; the transports (`crate::transport`) only move
//! request bodies and WebSocket frames in and out of [`Bayeux::process`].
//!
//! THIS FILE IS THE INTERFACE CONTRACT; its bodies are placeholders until the engine lands.

use portico_store::{Store, StoreError};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::accounts::Accounts;

/// Which notification endpoint an engine serves; sessions and queued notifications are
/// kept apart per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/notification/operations`: channel `/<deviceId>`, data = the operation.
    Operations,
    /// `/notification/realtime`: channels `/<kind>/<id or *>`, data = `{realtimeAction, data}`.
    Realtime,
}

#[derive(Debug, Clone)]
pub struct BayeuxOptions {
    /// How long a connect is held when the client asks for nothing else (DC-3: ~25 s).
    pub connect_timeout: Duration,
    /// The most a client's `advice.timeout` may ask for.
    pub max_connect_timeout: Duration,
    /// How long a session lives without a connect, beyond its connect timeout.
    pub session_grace: Duration,
}

impl Default for BayeuxOptions {
    fn default() -> BayeuxOptions {
        BayeuxOptions {
            connect_timeout: Duration::from_secs(25),
            max_connect_timeout: Duration::from_secs(50),
            session_grace: Duration::from_secs(60),
        }
    }
}

/// How the messages of one request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    LongPolling,
    CallbackPolling,
    WebSocket,
}

/// What a transport knows about the request (or WebSocket frame) the messages came in.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The HTTP `Authorization` header, if any (the WebSocket's upgrade request's).
    pub authorization: Option<String>,
    pub client: IpAddr,
    pub connection_type: ConnectionType,
}

/// One Bayeux message, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Message(pub serde_json::Map<String, Value>);

/// A request body that is not Bayeux: not JSON, or neither an object nor an array of
/// objects. The transport answers it with 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadMessage(pub String);

/// One notification endpoint's engine. Cheap to clone.
#[derive(Clone)]
pub struct Bayeux {
    endpoint: Endpoint,
    options: BayeuxOptions,
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    accounts: Arc<dyn Accounts>,
}

impl Bayeux {
    /// Opens the engine, with the sessions that were live when the process last stopped.
    pub async fn open(
        store: Store,
        endpoint: Endpoint,
        accounts: Arc<dyn Accounts>,
        options: BayeuxOptions,
    ) -> Result<Bayeux, StoreError> {
        Ok(Bayeux {
            endpoint,
            options,
            store,
            accounts,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The longest a `/meta/connect` may be held; transports keep their own timeouts above.
    pub fn max_hold(&self) -> Duration {
        self.options.max_connect_timeout
    }

    /// A request body: a JSON array of messages, or one message object.
    pub fn parse(body: &[u8]) -> Result<Vec<Message>, BadMessage> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| BadMessage(format!("the body is not JSON: {e}")))?;
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(Message(map)),
                _ => Err(BadMessage("each Bayeux message must be a JSON object".into())),
            })
            .collect()
    }

    /// Processes the messages in order and answers all of them in one array. A
    /// `/meta/connect` among them may wait: until a notification for its client, its
    /// timeout, or a newer connect of the same client.
    pub async fn process(&self, messages: Vec<Message>, _incoming: &Incoming) -> Vec<Value> {
        messages
            .into_iter()
            .map(|m| {
                serde_json::json!({
                    "channel": m.0.get("channel").cloned().unwrap_or(Value::Null),
                    "successful": false,
                    "error": "500::engine not built yet",
                })
            })
            .collect()
    }

    /// Delivers `data` on `channel` to the sessions of `tenant` subscribed to it, recording
    /// it first so sessions restored after a restart still get it.
    pub async fn publish(&self, tenant: &str, channel: &str, data: Value) {
        let _ = (tenant, channel, data);
    }

    /// Releases held connects and saves the sessions' positions, before the process ends.
    pub async fn shut_down(&self) {}
}
