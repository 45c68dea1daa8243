//! The handlers of the meta channels (handshake, connect, subscribe, unsubscribe,
//! disconnect) and of publishes by clients.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use super::channel::{check_subscription, subscribed_object, ChannelPattern};
use super::message::{self, error_reply, reply, retry_advice, unknown_client, Request};
use super::session::{End, Session};
use super::{persist, sessions, shared, Incoming, Inner, Message};
use crate::accounts::{AuthError, DEVICE_ROLE};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Handles one message; its reply (and, for a connect, the events before it) go to `out`.
pub async fn handle(
    inner: &Inner,
    m: &Message,
    request: Request,
    incoming: &Incoming,
    out: &mut Vec<Value>,
) {
    let reply = match request {
        Request::Handshake { shared_type } => handshake(inner, m, shared_type, incoming).await,
        Request::Connect {
            client_id,
            timeout_ms,
        } => match session_of(inner, &client_id).await {
            Some(session) => connect(inner, m, &session, timeout_ms, out).await,
            None => unknown_client(m),
        },
        Request::Subscribe {
            client_id,
            patterns,
        } => match session_of(inner, &client_id).await {
            Some(session) => subscribe(inner, m, &session, patterns).await,
            None => unknown_client(m),
        },
        Request::Unsubscribe {
            client_id,
            patterns,
        } => match session_of(inner, &client_id).await {
            Some(session) => unsubscribe(inner, m, &session, &patterns).await,
            None => unknown_client(m),
        },
        Request::Disconnect { client_id } => {
            let held = match session_of(inner, &client_id).await {
                Some(_) => inner.sessions.remove(&client_id),
                None => None,
            };
            match held {
                Some(session) => {
                    session.end(End::Disconnected);
                    persist::delete(inner, &session).await;
                    Value::Object(reply(m, true))
                }
                None => unknown_client(m),
            }
        }
        Request::Publish { client_id, channel } => match session_of(inner, &client_id).await {
            Some(_) => publish(m, &channel),
            None => unknown_client(m),
        },
    };
    out.push(reply);
}

/// The live session with this client id: held here, or (when nodes share the database)
/// taken over from the node that served it before.
async fn session_of(inner: &Inner, client_id: &str) -> Option<Arc<Session>> {
    match inner.sessions.get(client_id) {
        Some(session) => Some(session),
        None => shared::take_over(inner, client_id).await,
    }
}

/// A handshake failure the client should not retry as is.
fn refused(m: &Message, error: &str, advice: Value) -> Value {
    let mut out = error_reply(m, error);
    out.insert("advice".into(), advice);
    Value::Object(out)
}

async fn handshake(inner: &Inner, m: &Message, shared_type: bool, incoming: &Incoming) -> Value {
    if !shared_type {
        let offered =
            m.0.get("supportedConnectionTypes")
                .and_then(Value::as_array)
                .map(|types| {
                    types
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
        let mut out = error_reply(
            m,
            &format!("301::{offered}::none of these connection types is supported"),
        );
        out.insert("version".into(), json!("1.0"));
        out.insert(
            "supportedConnectionTypes".into(),
            json!(message::CONNECTION_TYPES),
        );
        out.insert("advice".into(), json!({"reconnect": "none"}));
        return Value::Object(out);
    }
    let Some(authorization) =
        message::ext_authorization(m).or_else(|| incoming.authorization.clone())
    else {
        return refused(m, "401::Unauthorized", json!({"reconnect": "none"}));
    };
    let caller = match inner
        .accounts
        .authenticate(&authorization, incoming.client)
        .await
    {
        Ok(caller) if caller.is_bootstrap() => {
            return refused(
                m,
                "403::the bootstrap user may only ask for device credentials",
                json!({"reconnect": "none"}),
            )
        }
        Ok(caller) => caller,
        Err(AuthError::Throttled { retry_after }) => {
            return refused(
                m,
                "429::too many failed attempts",
                json!({"reconnect": "handshake", "interval": millis(retry_after)}),
            )
        }
        Err(AuthError::Unavailable(_)) => {
            return refused(
                m,
                "503::cannot check credentials now",
                json!({"reconnect": "handshake", "interval": 1000}),
            )
        }
        Err(AuthError::Missing | AuthError::Invalid(_)) => {
            return refused(m, "401::Unauthorized", json!({"reconnect": "none"}))
        }
    };
    let timeout = inner.options.connect_timeout;
    let session = loop {
        let session = Arc::new(Session::new(
            new_client_id(),
            caller.tenant.clone(),
            caller.user.clone(),
            caller.role.clone(),
            timeout,
        ));
        if inner.sessions.insert(session.clone()) {
            break session;
        }
    };
    persist::save(inner, &session).await;
    let mut out = reply(m, true);
    out.insert("clientId".into(), json!(session.client_id));
    out.insert("version".into(), json!("1.0"));
    out.insert(
        "supportedConnectionTypes".into(),
        json!(message::CONNECTION_TYPES),
    );
    out.insert("advice".into(), retry_advice(millis(timeout)));
    Value::Object(out)
}

/// 128 random bits as 32 hex digits.
fn new_client_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn connect(
    inner: &Inner,
    m: &Message,
    session: &Session,
    timeout_ms: Option<u64>,
    out: &mut Vec<Value>,
) -> Value {
    let requested = timeout_ms.map(Duration::from_millis);
    let answer = sessions::connect(
        session,
        requested,
        inner.options.max_connect_timeout,
        inner.limits.redeliver_after,
        &inner.stop,
    )
    .await;
    match answer.ended {
        None => {}
        Some(End::Disconnected) => {
            // Released by the client's own disconnect.
            let mut reply = reply(m, true);
            reply.insert("advice".into(), json!({"reconnect": "none"}));
            return Value::Object(reply);
        }
        Some(End::Expired | End::Overflowed) => return unknown_client(m),
        // Its client talks to another node now; this connect was replaced there.
        Some(End::TakenOver) => {}
    }
    // Another node may take the session over at the client's next request: it must find
    // what this answer handed out, or what the client confirmed, saved already.
    let settled = !answer.events.is_empty() || answer.settled_answer;
    if inner.node.is_some() && answer.ended.is_none() && settled {
        persist::save(inner, session).await;
    }
    out.extend(answer.events.iter().map(|e| e.to_message()));
    let mut reply = reply(m, true);
    reply.insert("advice".into(), retry_advice(millis(answer.timeout)));
    Value::Object(reply)
}

async fn subscribe(
    inner: &Inner,
    m: &Message,
    session: &Session,
    patterns: Vec<ChannelPattern>,
) -> Value {
    for p in &patterns {
        let refusal = if p.is_meta() {
            Some("nobody subscribes to /meta channels".to_owned())
        } else if p.is_service() {
            Some("/service channels are not broadcast".to_owned())
        } else {
            check_subscription(inner.endpoint, p).err().map(|e| e.0)
        };
        if let Some(text) = refusal {
            return subscription_reply(m, Some(&format!("403::{}::{text}", p.as_str())));
        }
    }
    // A person or an operator's tool may follow every device of the tenant; a device (or a
    // session saved before roles were, which gets the narrower rights) only its own.
    let device = session.role == DEVICE_ROLE || session.role.is_empty();
    if device {
        for p in &patterns {
            if let Err(text) = owns(inner, session, p).await {
                return subscription_reply(m, Some(&format!("403::{}::{text}", p.as_str())));
            }
        }
    }
    {
        let mut state = session.state();
        for p in patterns {
            if !state.subscriptions.contains(&p) {
                if state.subscriptions.len() >= inner.limits.max_subscriptions {
                    let error = format!(
                        "403::{}::at most {} subscriptions per client",
                        p.as_str(),
                        inner.limits.max_subscriptions
                    );
                    return subscription_reply(m, Some(&error));
                }
                state.subscriptions.push(p);
            }
        }
    }
    persist::save(inner, session).await;
    subscription_reply(m, None)
}

/// A device's own user subscribes only to a managed object it owns, as on the REST API
/// (no wildcards: they would show it every device of its tenant).
async fn owns(inner: &Inner, session: &Session, pattern: &ChannelPattern) -> Result<(), String> {
    let refused = || "a device subscribes only to managed objects it owns".to_owned();
    let id = subscribed_object(inner.endpoint, pattern).ok_or_else(refused)?;
    match inner.store.managed_object(&session.tenant, id).await {
        Ok(Some(object)) if object.owner == session.user => Ok(()),
        Ok(_) => Err(refused()),
        Err(e) => Err(format!("cannot check the managed object now: {e}")),
    }
}

async fn unsubscribe(
    inner: &Inner,
    m: &Message,
    session: &Session,
    patterns: &[ChannelPattern],
) -> Value {
    session
        .state()
        .subscriptions
        .retain(|p| !patterns.contains(p));
    persist::save(inner, session).await;
    subscription_reply(m, None)
}

/// A (un)subscribe reply, echoing `subscription` as the client sent it.
fn subscription_reply(m: &Message, error: Option<&str>) -> Value {
    let mut out = match error {
        Some(error) => error_reply(m, error),
        None => reply(m, true),
    };
    if let Some(s) = m.0.get("subscription") {
        out.insert("subscription".into(), s.clone());
    }
    Value::Object(out)
}

/// Clients publish only to `/service/**` (acknowledged, never broadcast); the broadcast
/// channels carry what the server announces.
fn publish(m: &Message, channel: &ChannelPattern) -> Value {
    if channel.is_service() {
        return Value::Object(reply(m, true));
    }
    Value::Object(error_reply(
        m,
        &format!(
            "403::{}::clients may not publish to broadcast channels",
            channel.as_str()
        ),
    ))
}
