//! A small stand-in for Portico's device REST API and `/notification/operations`, as
//! `protocol` describes them, to run the whole load generator against in a test: it
//! creates managed objects and operations, queues each operation on its device's channel,
//! holds connects until something is queued (briefly), forgets every second client once
//! (`402::`) so that re-handshakes are exercised, and drops the connection of a held
//! connect of every third client once, so that a lost poll is.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How long the fake holds a connect.
const HOLD: Duration = Duration::from_millis(300);

#[derive(Default)]
struct State {
    next_id: u64,
    /// clientId → (subscribed channel, connects so far).
    sessions: HashMap<String, (Option<String>, u32)>,
    /// Clients already forgotten once.
    forgotten: HashSet<u64>,
    /// Clients whose poll was already dropped once.
    dropped: HashSet<u64>,
    /// channel → queued operations.
    queues: HashMap<String, Vec<Value>>,
    wakers: HashMap<String, Arc<Notify>>,
    /// Requests that broke the protocol's rules as the fake checks them.
    violations: Vec<String>,
}

#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<State>>);

impl Fake {
    pub async fn start() -> (Fake, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let fake = Fake::default();
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fake = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let fake = fake.clone();
                        async move { fake.handle(request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (fake, address)
    }

    pub fn violations(&self) -> Vec<String> {
        self.0.lock().unwrap().violations.clone()
    }

    fn violation(&self, what: String) {
        self.0.lock().unwrap().violations.push(what);
    }

    /// The answer, or an error when the connection is to be dropped without one.
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let path = request.uri().path().to_owned();
        let host = request.headers().get(http::header::HOST).cloned();
        if host.as_ref().and_then(|h| h.to_str().ok()) != Some("southgate.eu1.portico.localhost") {
            self.violation(format!("{path}: Host {host:?}"));
        }
        let basic = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|a| a.as_bytes().starts_with(b"Basic "));
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match path.as_str() {
            "/inventory/managedObjects" => {
                if !basic || !body["c8y_IsDevice"].is_object() {
                    self.violation(format!("managed object {body}, basic {basic}"));
                }
                let id = self.next_id();
                Ok(answer(StatusCode::CREATED, json!({ "id": id.to_string() })))
            }
            "/devicecontrol/operations" => {
                if !basic {
                    self.violation("operation without credentials".into());
                }
                let channel = format!("/{}", body["deviceId"].as_str().unwrap_or(""));
                let waker = {
                    let mut state = self.0.lock().unwrap();
                    state.queues.entry(channel.clone()).or_default().push(body);
                    state.wakers.entry(channel).or_default().clone()
                };
                waker.notify_one();
                Ok(answer(
                    StatusCode::CREATED,
                    json!({ "id": "1", "status": "PENDING" }),
                ))
            }
            "/notification/operations" => {
                let mut replies = Vec::new();
                for message in body.as_array().cloned().unwrap_or_default() {
                    replies.extend(self.bayeux(message).await?);
                }
                Ok(answer(StatusCode::OK, Value::Array(replies)))
            }
            _ => Ok(answer(
                StatusCode::NOT_FOUND,
                json!({ "error": "not found" }),
            )),
        }
    }

    fn next_id(&self) -> u64 {
        let mut state = self.0.lock().unwrap();
        state.next_id += 1;
        state.next_id
    }

    async fn bayeux(&self, message: Value) -> Result<Vec<Value>, Dropped> {
        let channel = message["channel"].as_str().unwrap_or("").to_owned();
        let id = message["id"].clone();
        let client_id = message["clientId"].as_str().unwrap_or("").to_owned();
        match channel.as_str() {
            "/meta/handshake" => {
                if message["ext"]["com.cumulocity.authn"]["token"]
                    .as_str()
                    .is_none()
                    || message["supportedConnectionTypes"] != json!(["long-polling"])
                {
                    self.violation(format!("handshake {message}"));
                }
                let client_id = self.next_id().to_string();
                self.0
                    .lock()
                    .unwrap()
                    .sessions
                    .insert(client_id.clone(), (None, 0));
                Ok(vec![
                    json!({"channel": channel, "id": id, "successful": true,
                    "clientId": client_id, "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"]}),
                ])
            }
            "/meta/subscribe" => {
                let subscription = message["subscription"].as_str().map(str::to_owned);
                let mut state = self.0.lock().unwrap();
                Ok(match state.sessions.get_mut(&client_id) {
                    Some(session) => {
                        session.0 = subscription.clone();
                        vec![json!({"channel": channel, "id": id, "successful": true,
                            "clientId": client_id, "subscription": subscription})]
                    }
                    None => vec![unknown(&channel, &id)],
                })
            }
            "/meta/connect" => self.connect(&client_id, id).await,
            other => {
                self.violation(format!("message on {other}"));
                Ok(vec![])
            }
        }
    }

    async fn connect(&self, client_id: &str, id: Value) -> Result<Vec<Value>, Dropped> {
        let (subscription, connects) = {
            let mut state = self.0.lock().unwrap();
            let Some(session) = state.sessions.get_mut(client_id) else {
                return Ok(vec![unknown("/meta/connect", &id)]);
            };
            session.1 += 1;
            let (subscription, connects) = session.clone();
            let number: u64 = client_id.parse().unwrap_or(0);
            if connects == 2 && number % 2 == 0 && state.forgotten.insert(number) {
                state.sessions.remove(client_id);
                return Ok(vec![unknown("/meta/connect", &id)]);
            }
            if connects == 3 && number % 3 == 0 && state.dropped.insert(number) {
                return Err(Dropped);
            }
            (subscription, connects)
        };
        let Some(subscription) = subscription else {
            return Ok(vec![
                json!({"channel": "/meta/connect", "id": id, "successful": true}),
            ]);
        };
        if connects > 1 {
            let waker = self
                .0
                .lock()
                .unwrap()
                .wakers
                .entry(subscription.clone())
                .or_default()
                .clone();
            let queued = !self.take(&subscription, false).is_empty();
            if !queued {
                let _ = tokio::time::timeout(HOLD, waker.notified()).await;
            }
        }
        let mut replies: Vec<Value> = self
            .take(&subscription, true)
            .into_iter()
            .map(|operation| json!({"channel": subscription, "data": operation}))
            .collect();
        replies.push(
            json!({"channel": "/meta/connect", "id": id, "successful": true,
            "advice": {"reconnect": "retry", "interval": 0}}),
        );
        Ok(replies)
    }

    /// The operations queued on `channel`: taken away, or only looked at.
    fn take(&self, channel: &str, remove: bool) -> Vec<Value> {
        let mut state = self.0.lock().unwrap();
        match state.queues.get_mut(channel) {
            Some(queue) if remove => std::mem::take(queue),
            Some(queue) => queue.clone(),
            None => Vec::new(),
        }
    }
}

/// The fake drops the connection instead of answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dropped")
    }
}

impl std::error::Error for Dropped {}

fn unknown(channel: &str, id: &Value) -> Value {
    json!({"channel": channel, "id": id, "successful": false, "error": "402::unknown client",
        "advice": {"reconnect": "handshake", "interval": 0}})
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::Fake;
    use crate::args::Args;
    use clap::Parser as _;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_operation_reaches_its_device_once_through_rehandshakes_and_lost_polls() {
        let (fake, address) = Fake::start().await;
        let server = address.to_string();
        let args = Args::try_parse_from([
            "realtime-load",
            "--server",
            &server,
            "--admin",
            "bench/admin:pw",
            "--device-user",
            "bench/device_a:pw",
            "--device-user",
            "bench/device_b:pw",
            "--clients",
            "20",
            "--rate",
            "100",
            "--duration",
            "1",
            "--drain",
            "10",
            "--idle",
            "0",
            "--source-addresses",
            "3",
            "--connect-timeout",
            "10",
            "--request-timeout",
            "5",
            "--poll-timeout",
            "5",
        ])
        .unwrap();
        args.validate().unwrap();
        let summary = tokio::time::timeout(std::time::Duration::from_secs(60), crate::run(&args))
            .await
            .unwrap()
            .unwrap();
        let tally = &summary.tally;
        assert_eq!(tally.created, 100);
        assert_eq!(tally.received, 100);
        assert_eq!((tally.lost, tally.duplicates, tally.unexpected), (0, 0, 0));
        assert_eq!(tally.latencies_us.len(), 100);
        assert_eq!(summary.foreign, 0);
        // Every second client was forgotten once and handshook again.
        assert!(summary.rehandshakes >= 10, "{}", summary.rehandshakes);
        // Every third client lost a poll (one error each), opened a new connection and
        // polled on in the same session.
        assert!(summary.errors >= 6, "{}", summary.errors);
        assert!(summary.reconnects.unwrap() >= 6, "{:?}", summary.reconnects);
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
}
