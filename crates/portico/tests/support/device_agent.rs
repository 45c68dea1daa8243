//! A device agent as the outage tests need one: it long-polls `/notification/operations`
//! for its device, and on every (re)handshake asks the REST API for its PENDING
//! operations, as Cumulocity agents do, so that nothing created while it was away is
//! missed. Each operation it gets is walked through EXECUTING to SUCCESSFUL; one it has
//! done already is counted as a duplicate delivery. It runs on a thread of its own with
//! its own runtime, so synchronous tests can restart the server under it.
//!
//! Every request goes on a fresh connection: a pooled connection may be one a black hole
//! swallowed.

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The REST and Bayeux paths of one device API, reached on `addr` with `host` as `Host`.
#[derive(Clone)]
pub struct DeviceApi {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: std::net::SocketAddr,
    host: String,
    authorization: String,
}

impl DeviceApi {
    /// `login` is `tenant/user:password`.
    pub fn new(addr: std::net::SocketAddr, host: &str, login: &str) -> DeviceApi {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        DeviceApi {
            client,
            addr,
            host: host.to_string(),
            authorization: format!("Basic {}", basic_token(login)),
        }
    }

    /// One JSON request; `(status, body)` or an error for a transport failure or `limit`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        limit: Duration,
    ) -> Result<(u16, Value), String> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("host", &self.host)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let answer = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok((status, value))
        };
        tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
    }
}

/// base64 of `tenant/user:password`, as HTTP Basic and the Bayeux ext token carry it.
pub fn basic_token(login: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(login)
}

#[derive(Clone)]
pub struct AgentConfig {
    pub api: DeviceApi,
    pub device_id: String,
    pub login: String,
    /// How long past the server's hold a connect may take before the agent gives up on it
    /// (a silently dropped connection never answers).
    pub network_delay: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct AgentReport {
    /// Operations done (SUCCESSFUL), by id.
    pub done: HashSet<String>,
    /// Operations that arrived through a notification.
    pub notified: HashSet<String>,
    /// Operations that arrived through the PENDING query.
    pub queried: HashSet<String>,
    /// Deliveries of operations already done.
    pub duplicates: usize,
    pub handshakes: usize,
    /// Operations whose SUCCESSFUL update was refused although the agent had not done
    /// them (must stay 0).
    pub refused: usize,
}

pub struct Agent {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<AgentReport>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    pub fn start(config: AgentConfig) -> Agent {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(AgentReport::default()));
        let (s, r) = (stop.clone(), report.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(run(config, s, r));
        });
        Agent {
            stop,
            report,
            thread: Some(thread),
        }
    }

    pub fn report(&self) -> AgentReport {
        self.report.lock().unwrap().clone()
    }

    /// Waits up to `limit` for `check` on the report.
    pub fn wait_for(&self, limit: Duration, check: impl Fn(&AgentReport) -> bool) -> bool {
        super::within(limit, || check(&self.report())).is_some()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const BASE: &str = "/notification/operations";
/// The longest a request other than a connect may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

async fn run(config: AgentConfig, stop: Arc<AtomicBool>, report: Arc<Mutex<AgentReport>>) {
    let pause = || tokio::time::sleep(Duration::from_millis(300));
    while !stop.load(Ordering::SeqCst) {
        let Some((client_id, hold)) = handshake(&config).await else {
            pause().await;
            continue;
        };
        report.lock().unwrap().handshakes += 1;
        if !subscribe(&config, &client_id).await {
            pause().await;
            continue;
        }
        for operation in pending(&config).await {
            act(&config, &report, operation, false).await;
        }
        // Connects until the session is gone (402) or the agent stops.
        let mut gone = false;
        while !gone && !stop.load(Ordering::SeqCst) {
            let message = json!([{
                "channel": "/meta/connect",
                "clientId": client_id,
                "connectionType": "long-polling",
            }]);
            let limit = hold + config.network_delay;
            match config
                .api
                .call(Method::POST, BASE, Some(&message), limit)
                .await
            {
                Ok((200, Value::Array(replies))) => {
                    let mut operations = Vec::new();
                    for reply in replies {
                        let channel = reply["channel"].as_str().unwrap_or_default();
                        if channel == "/meta/connect" {
                            let error = reply["error"].as_str().unwrap_or_default();
                            gone = reply["successful"] == false && error.starts_with("402");
                        } else if channel == format!("/{}", config.device_id) {
                            operations.push(reply["data"].clone());
                        }
                    }
                    // Done beside the next connect, which goes out at once, as a Bayeux
                    // client's does (a late one tells the server its answer was lost).
                    let (config, report) = (config.clone(), report.clone());
                    tokio::spawn(async move {
                        for operation in operations {
                            act(&config, &report, operation, true).await;
                        }
                    });
                }
                // A lost or refused poll: try again, with the same session.
                _ => pause().await,
            }
        }
    }
}

/// `(clientId, hold)`: the session and how long the server may hold a connect.
async fn handshake(config: &AgentConfig) -> Option<(String, Duration)> {
    let message = json!([{
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "ext": {"com.cumulocity.authn": {"token": basic_token(&config.login)}},
    }]);
    let (status, reply) = config
        .api
        .call(Method::POST, BASE, Some(&message), REQUEST_LIMIT)
        .await
        .ok()?;
    let reply = &reply[0];
    if status != 200 || reply["successful"] != true {
        return None;
    }
    let hold = reply["advice"]["timeout"].as_u64().unwrap_or(25_000);
    Some((
        reply["clientId"].as_str()?.to_string(),
        Duration::from_millis(hold),
    ))
}

async fn subscribe(config: &AgentConfig, client_id: &str) -> bool {
    let message = json!([{
        "channel": "/meta/subscribe",
        "clientId": client_id,
        "subscription": format!("/{}", config.device_id),
    }]);
    matches!(
        config.api.call(Method::POST, BASE, Some(&message), REQUEST_LIMIT).await,
        Ok((200, reply)) if reply[0]["successful"] == true
    )
}

/// The device's PENDING operations, every page until an empty one (at most 100 pages).
async fn pending(config: &AgentConfig) -> Vec<Value> {
    let mut all = Vec::new();
    for page in 1..=100 {
        let path = format!(
            "/devicecontrol/operations?deviceId={}&status=PENDING&pageSize=100&currentPage={page}",
            config.device_id
        );
        let Ok((200, body)) = config
            .api
            .call(Method::GET, &path, None, REQUEST_LIMIT)
            .await
        else {
            break;
        };
        let operations = body["operations"].as_array().cloned().unwrap_or_default();
        if operations.is_empty() {
            break;
        }
        all.extend(operations);
    }
    all
}

/// Does one operation: EXECUTING, then SUCCESSFUL.
async fn act(config: &AgentConfig, report: &Mutex<AgentReport>, operation: Value, notified: bool) {
    let Some(id) = operation["id"].as_str().map(str::to_string) else {
        return;
    };
    {
        let mut report = report.lock().unwrap();
        if notified {
            report.notified.insert(id.clone());
        } else {
            report.queried.insert(id.clone());
        }
        if report.done.contains(&id) {
            report.duplicates += 1;
            return;
        }
    }
    let path = format!("/devicecontrol/operations/{id}");
    let started = Instant::now();
    for status in ["EXECUTING", "SUCCESSFUL"] {
        // A request lost to an outage is tried again, for a while.
        loop {
            let body = json!({"status": status});
            match config
                .api
                .call(Method::PUT, &path, Some(&body), REQUEST_LIMIT)
                .await
            {
                Ok((200, _)) => break,
                Ok((422, _)) => {
                    // Done already: by an earlier delivery, or by this one when a crash
                    // swallowed the answer to its SUCCESSFUL. Not done twice either way;
                    // the tests check the server's status of every operation.
                    let mut report = report.lock().unwrap();
                    report.duplicates += 1;
                    report.done.insert(id);
                    return;
                }
                Ok((status, body)) if status < 500 => {
                    eprintln!("operation {id}: {status} {body}");
                    report.lock().unwrap().refused += 1;
                    return;
                }
                _ if started.elapsed() > Duration::from_secs(60) => return,
                _ => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }
    report.lock().unwrap().done.insert(id);
}
