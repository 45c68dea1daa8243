//! What `realtime-load` assumes about Portico's device API and its Bayeux server, in one
//! place: paths, media types, the messages it sends, and how it reads the replies. The
//! shapes follow the Cumulocity device API that Portico implements; where the server's
//! behaviour is an assumption rather than the Bayeux or Cumulocity rule, it says so here.

use serde_json::{json, Value};

/// The Bayeux endpoint of operations: channel `/<deviceId>`, data = the operation.
pub const OPERATIONS_ENDPOINT: &str = "/notification/operations";
/// Where managed objects (devices) are created; answered `201` with the object's `id`.
pub const MANAGED_OBJECTS: &str = "/inventory/managedObjects";
/// Where an operator creates operations; answered `201`.
pub const OPERATIONS: &str = "/devicecontrol/operations";
/// Bayeux requests and the REST bodies are sent as plain JSON, which Portico accepts beside
/// the vendor media types.
pub const JSON: &str = "application/json";
/// The fragment of an operation that carries the load generator's unique id.
pub const COMMAND_FRAGMENT: &str = "c8y_Command";

/// Assumption: the credentials ride in the handshake's `ext` only. The server remembers the
/// caller for the session, so subscribes and connects carry no token and cost no password
/// check (Portico's passwords are argon2id; a check per poll would be the load measured).
pub const TOKEN_ON_HANDSHAKE_ONLY: bool = true;

/// The body of a managed object that is a device which takes commands.
pub fn managed_object(index: usize) -> Value {
    json!({
        "name": format!("realtime-load-{index}"),
        "c8y_IsDevice": {},
        "c8y_SupportedOperations": [COMMAND_FRAGMENT],
    })
}

/// The id of a created managed object. Cumulocity sends ids as strings; a number is taken
/// too.
pub fn created_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match value.get("id")? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The body of an operation for `device` carrying the unique `text`.
pub fn operation(device: &str, text: &str) -> Value {
    json!({
        "deviceId": device,
        "description": "realtime-load",
        COMMAND_FRAGMENT: { "text": text },
    })
}

/// The `ext` that authenticates a handshake: `token` = base64 of `tenant/user:password`,
/// which the server treats as HTTP Basic.
fn authn(token: &str) -> Value {
    json!({ "com.cumulocity.authn": { "token": token } })
}

pub fn handshake(id: u64, token: &str) -> Value {
    json!([{
        "channel": "/meta/handshake",
        "version": "1.0",
        "minimumVersion": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "id": id.to_string(),
        "ext": authn(token),
    }])
}

pub fn subscribe(id: u64, client_id: &str, channel: &str, token: &str) -> Value {
    let mut message = json!({
        "channel": "/meta/subscribe",
        "clientId": client_id,
        "subscription": channel,
        "id": id.to_string(),
    });
    if !TOKEN_ON_HANDSHAKE_ONLY {
        message["ext"] = authn(token);
    }
    json!([message])
}

pub fn connect(id: u64, client_id: &str) -> Value {
    json!([{
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        "id": id.to_string(),
    }])
}

/// The channel a device's operations are published on.
pub fn device_channel(device: &str) -> String {
    format!("/{device}")
}

/// One message of a reply array, as the load generator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A reply on a `/meta/...` channel.
    Meta(MetaReply),
    /// A published message on any other channel; `text` is its `c8y_Command.text`, if any.
    Delivery {
        channel: String,
        text: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaReply {
    pub channel: String,
    pub successful: bool,
    pub client_id: Option<String>,
    pub error: Option<String>,
    /// The server wants a new handshake: a `402::` error (unknown client) or
    /// `advice.reconnect` = `handshake`.
    pub rehandshake: bool,
    /// `advice.reconnect` = `none`: the server wants this client gone.
    pub give_up: bool,
    /// `advice.interval` in milliseconds, when given.
    pub interval_ms: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadReply(pub String);

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadReply {}

/// Reads a Bayeux reply body: a JSON array of messages (a single object is taken as an
/// array of one, as some servers answer).
pub fn parse_replies(body: &[u8]) -> Result<Vec<Reply>, BadReply> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BadReply(format!("the reply is not JSON: {e}")))?;
    let messages = match value {
        Value::Array(messages) => messages,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(BadReply(format!(
                "the reply is not a message array: {other}"
            )))
        }
    };
    messages.iter().map(reply).collect()
}

fn reply(message: &Value) -> Result<Reply, BadReply> {
    let channel = message
        .get("channel")
        .and_then(Value::as_str)
        .ok_or_else(|| BadReply(format!("a reply message without a channel: {message}")))?;
    if !channel.starts_with("/meta/") {
        let text = message
            .get("data")
            .and_then(|d| d.get(COMMAND_FRAGMENT))
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(Reply::Delivery {
            channel: channel.to_owned(),
            text,
        });
    }
    let error = message
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let advice = message.get("advice");
    let reconnect = advice
        .and_then(|a| a.get("reconnect"))
        .and_then(Value::as_str);
    Ok(Reply::Meta(MetaReply {
        channel: channel.to_owned(),
        successful: message.get("successful").and_then(Value::as_bool) == Some(true),
        client_id: message
            .get("clientId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        rehandshake: reconnect == Some("handshake")
            || error.as_deref().is_some_and(|e| e.starts_with("402:")),
        give_up: reconnect == Some("none"),
        interval_ms: advice
            .and_then(|a| a.get("interval"))
            .and_then(Value::as_u64),
        error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(replies: &[Reply], channel: &str) -> MetaReply {
        replies
            .iter()
            .find_map(|r| match r {
                Reply::Meta(m) if m.channel == channel => Some(m.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_handshake_reply_gives_the_client_id() {
        let body = br#"[{"channel":"/meta/handshake","successful":true,"clientId":"abc",
            "version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1",
            "advice":{"reconnect":"retry","interval":0,"timeout":25000}}]"#;
        let replies = parse_replies(body).unwrap();
        let m = meta(&replies, "/meta/handshake");
        assert!(m.successful);
        assert_eq!(m.client_id.as_deref(), Some("abc"));
        assert!(!m.rehandshake && !m.give_up);
        assert_eq!(m.interval_ms, Some(0));
    }

    #[test]
    fn an_unknown_client_is_told_to_handshake() {
        let body = br#"[{"channel":"/meta/connect","successful":false,"id":"7",
            "error":"402::unknown client","advice":{"reconnect":"handshake","interval":0}}]"#;
        let m = meta(&parse_replies(body).unwrap(), "/meta/connect");
        assert!(!m.successful && m.rehandshake);
        assert_eq!(m.error.as_deref(), Some("402::unknown client"));
        // The error code alone is enough, and so is the advice alone.
        let code_only = br#"[{"channel":"/meta/connect","successful":false,"error":"402::x"}]"#;
        assert!(meta(&parse_replies(code_only).unwrap(), "/meta/connect").rehandshake);
        let advice_only = br#"{"channel":"/meta/subscribe","successful":false,
            "advice":{"reconnect":"handshake"}}"#;
        assert!(meta(&parse_replies(advice_only).unwrap(), "/meta/subscribe").rehandshake);
        // Other errors are not.
        let denied = br#"[{"channel":"/meta/subscribe","successful":false,"error":"403::denied",
            "advice":{"reconnect":"none"}}]"#;
        let m = meta(&parse_replies(denied).unwrap(), "/meta/subscribe");
        assert!(!m.rehandshake && m.give_up);
    }

    #[test]
    fn deliveries_are_batched_with_the_connect_reply() {
        let body = br#"[
            {"channel":"/42","data":{"id":"9","deviceId":"42","c8y_Command":{"text":"r-1"}}},
            {"channel":"/42","data":{"id":"10","deviceId":"42","c8y_Command":{"text":"r-2"}}},
            {"channel":"/42","data":{"id":"11","deviceId":"42","c8y_Restart":{}}},
            {"channel":"/meta/connect","successful":true,"clientId":"abc","id":"3"}]"#;
        let replies = parse_replies(body).unwrap();
        assert_eq!(replies.len(), 4);
        assert_eq!(
            replies[0],
            Reply::Delivery {
                channel: "/42".into(),
                text: Some("r-1".into())
            }
        );
        assert!(matches!(&replies[1], Reply::Delivery { text: Some(t), .. } if t == "r-2"));
        assert!(matches!(&replies[2], Reply::Delivery { text: None, .. }));
        assert!(meta(&replies, "/meta/connect").successful);
    }

    #[test]
    fn bodies_that_are_not_bayeux_are_errors() {
        assert!(parse_replies(b"<html>").is_err());
        assert!(parse_replies(b"42").is_err());
        assert!(parse_replies(br#"[{"successful":true}]"#).is_err());
        assert_eq!(parse_replies(b"[]").unwrap(), vec![]);
    }

    #[test]
    fn requests_have_the_cumulocity_shapes() {
        let h = handshake(1, "dG9rZW4=");
        assert_eq!(h[0]["supportedConnectionTypes"], json!(["long-polling"]));
        assert_eq!(h[0]["ext"]["com.cumulocity.authn"]["token"], "dG9rZW4=");
        let s = subscribe(2, "abc", &device_channel("42"), "dG9rZW4=");
        assert_eq!(s[0]["subscription"], "/42");
        assert_eq!(s[0]["clientId"], "abc");
        let c = connect(3, "abc");
        assert_eq!(c[0]["connectionType"], "long-polling");
        assert_eq!(c[0]["id"], "3");
        let o = operation("42", "r-1");
        assert_eq!(o["deviceId"], "42");
        assert_eq!(o["c8y_Command"]["text"], "r-1");
        assert!(managed_object(5)["c8y_IsDevice"].is_object());
    }

    #[test]
    fn created_ids_are_strings_or_numbers() {
        assert_eq!(created_id(br#"{"id":"17","name":"x"}"#), Some("17".into()));
        assert_eq!(created_id(br#"{"id":17}"#), Some("17".into()));
        assert_eq!(created_id(br#"{"id":""}"#), None);
        assert_eq!(created_id(b"{}"), None);
        assert_eq!(created_id(b"oops"), None);
    }
}
