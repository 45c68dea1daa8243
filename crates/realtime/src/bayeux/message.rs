//! Bayeux messages: reading a request body, telling what each message asks for
//! ([`Request::from_message`], free of any session state, so it can be fuzzed), and the
//! shape of the replies.

use serde_json::{json, Map, Value};

use super::channel::ChannelPattern;
use super::{BadMessage, Message};

/// The connection types this server speaks, as the handshake names them.
pub const CONNECTION_TYPES: [&str; 3] = ["long-polling", "callback-polling", "websocket"];

/// The `ext` key under which Cumulocity clients send their credentials.
pub const AUTHN_EXT: &str = "com.cumulocity.authn";

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
            _ => Err(BadMessage(
                "each Bayeux message must be a JSON object".into(),
            )),
        })
        .collect()
}

/// What one message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Handshake {
        /// The client offered at least one connection type this server speaks.
        shared_type: bool,
    },
    Connect {
        client_id: String,
        /// `advice.timeout` in milliseconds, when the client gave one.
        timeout_ms: Option<u64>,
    },
    Subscribe {
        client_id: String,
        patterns: Vec<ChannelPattern>,
    },
    Unsubscribe {
        client_id: String,
        patterns: Vec<ChannelPattern>,
    },
    Disconnect {
        client_id: String,
    },
    Publish {
        client_id: String,
        channel: ChannelPattern,
    },
}

/// Why a message is refused: a Bayeux error string (`code::args::text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    fn bad(text: impl std::fmt::Display) -> Refusal {
        Refusal(format!("400::{text}"))
    }
}

impl Request {
    /// Checks a message's fields; sessions and permissions are the engine's business.
    pub fn from_message(message: &Message) -> Result<Request, Refusal> {
        let m = &message.0;
        let channel = m
            .get("channel")
            .and_then(Value::as_str)
            .ok_or_else(|| Refusal::bad("the message has no channel"))?;
        let client_id = || {
            m.get("clientId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Refusal::bad("the message has no clientId"))
        };
        match channel {
            "/meta/handshake" => {
                if m.get("version").and_then(Value::as_str).is_none() {
                    return Err(Refusal::bad("the handshake has no version"));
                }
                let offered = m
                    .get("supportedConnectionTypes")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Refusal::bad("the handshake has no supportedConnectionTypes"))?;
                let shared_type = offered
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|t| CONNECTION_TYPES.contains(&t));
                Ok(Request::Handshake { shared_type })
            }
            "/meta/connect" => Ok(Request::Connect {
                client_id: client_id()?,
                timeout_ms: m
                    .get("advice")
                    .and_then(|a| a.get("timeout"))
                    .and_then(Value::as_f64)
                    .map(|t| t.clamp(0.0, u64::MAX as f64) as u64),
            }),
            "/meta/subscribe" | "/meta/unsubscribe" => {
                let client_id = client_id()?;
                let patterns = subscription_patterns(m.get("subscription"))?;
                Ok(if channel == "/meta/subscribe" {
                    Request::Subscribe {
                        client_id,
                        patterns,
                    }
                } else {
                    Request::Unsubscribe {
                        client_id,
                        patterns,
                    }
                })
            }
            "/meta/disconnect" => Ok(Request::Disconnect {
                client_id: client_id()?,
            }),
            other if other.starts_with("/meta/") || other == "/meta" => {
                Err(Refusal::bad(format!("unknown meta channel {other}")))
            }
            other => {
                let channel = ChannelPattern::parse(other).map_err(Refusal::bad)?;
                if channel.is_wildcard() {
                    return Err(Refusal::bad("cannot publish to a wildcard channel"));
                }
                if !m.contains_key("data") {
                    return Err(Refusal::bad("a publish needs data"));
                }
                Ok(Request::Publish {
                    client_id: client_id()?,
                    channel,
                })
            }
        }
    }
}

/// `subscription`: one channel pattern or an array of them (at least one).
fn subscription_patterns(value: Option<&Value>) -> Result<Vec<ChannelPattern>, Refusal> {
    let texts: Vec<&str> = match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| Refusal::bad("subscription must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(Refusal::bad("the message has no subscription")),
    };
    texts
        .into_iter()
        .map(|t| ChannelPattern::parse(t).map_err(|e| Refusal(format!("400::{t}::{e}"))))
        .collect()
}

/// The credentials a handshake's `ext` carries, as an `Authorization` header value: a
/// JWT (three dot-separated parts) is a Bearer token, anything else the base64 of
/// `tenant/user:password` for Basic.
pub fn ext_authorization(message: &Message) -> Option<String> {
    let token = message
        .0
        .get("ext")?
        .get(AUTHN_EXT)?
        .get("token")?
        .as_str()?
        .trim();
    if token.is_empty() {
        return None;
    }
    Some(if token.split('.').count() == 3 {
        format!("Bearer {token}")
    } else {
        format!("Basic {token}")
    })
}

/// The start of every reply to `message`: its channel, its `id` when it had one, and
/// `successful`.
pub fn reply(message: &Message, successful: bool) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "channel".into(),
        message.0.get("channel").cloned().unwrap_or(Value::Null),
    );
    if let Some(id) = message.0.get("id") {
        out.insert("id".into(), id.clone());
    }
    if let Some(client_id) = message.0.get("clientId") {
        out.insert("clientId".into(), client_id.clone());
    }
    out.insert("successful".into(), Value::Bool(successful));
    out
}

/// A failed reply with a Bayeux error string.
pub fn error_reply(message: &Message, error: &str) -> Map<String, Value> {
    let mut out = reply(message, false);
    out.insert("error".into(), Value::String(error.into()));
    out
}

/// The answer for a client id the server does not know (any more): handshake again.
pub fn unknown_client(message: &Message) -> Value {
    let mut out = error_reply(message, "402::Unknown client");
    out.insert(
        "advice".into(),
        json!({"reconnect": "handshake", "interval": 0}),
    );
    Value::Object(out)
}

/// The advice given on handshake and connect replies.
pub fn retry_advice(timeout_ms: u64) -> Value {
    json!({"reconnect": "retry", "interval": 0, "timeout": timeout_ms})
}
