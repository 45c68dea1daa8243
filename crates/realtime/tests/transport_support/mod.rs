//! A notification endpoint's transports served on 127.0.0.1:0 over a real SQLite store,
//! and a small HTTP client for the tests. Tests check transport facts only (statuses,
//! headers, framing, the `channel` of each reply), never what the engine answers.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portico_realtime::bayeux::{Bayeux, BayeuxOptions, Endpoint};
use portico_realtime::transport::{self, TransportOptions};
use portico_realtime::{Accounts, AuthError, Caller, DeviceCredentials};
use portico_store::Store;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub const BASE: &str = "/notification/operations";

/// Accepts nothing: the transports never authenticate on their own.
struct NoAccounts;

impl Accounts for NoAccounts {
    fn authenticate<'a>(
        &'a self,
        _authorization: &'a str,
        _client: IpAddr,
    ) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async { Err(AuthError::Invalid("no accounts in this test".into())) })
    }

    fn issue_device_credentials<'a>(
        &'a self,
        _tenant: &'a str,
        _external_id: &'a str,
    ) -> BoxFuture<'a, Result<DeviceCredentials, AuthError>> {
        Box::pin(async { Err(AuthError::Unavailable("no accounts in this test".into())) })
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub bayeux: Bayeux,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(options: TransportOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/portico.db", dir.path().display()))
            .await
            .unwrap();
        let options_bayeux = BayeuxOptions {
            connect_timeout: Duration::from_secs(2),
            max_connect_timeout: Duration::from_secs(4),
            session_grace: Duration::from_secs(10),
        };
        let bayeux = Bayeux::open(
            store,
            Endpoint::Operations,
            Arc::new(NoAccounts),
            options_bayeux,
        )
        .await
        .unwrap();
        let app = transport::router(BASE, bayeux.clone(), options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            addr,
            bayeux,
            _dir: dir,
        }
    }

    pub async fn default() -> Server {
        Server::start(TransportOptions::default()).await
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}{BASE}", self.addr)
    }

    /// One request; the status, headers and body as text.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(path_and_query));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
            .await
            .expect("the server answers within 20 s")
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    pub async fn post_json(&self, path: &str, body: &str) -> Answer {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `channel` of each reply, in order.
    pub fn channels(&self) -> Vec<String> {
        channels(&self.json())
    }
}

pub fn channels(replies: &Value) -> Vec<String> {
    replies
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {replies}"))
        .iter()
        .map(|r| r["channel"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A Bayeux message array with these channels (the transports pass any channel through).
pub fn messages(channels: &[&str]) -> String {
    let items: Vec<Value> = channels
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({"channel": c, "id": i.to_string()}))
        .collect();
    Value::Array(items).to_string()
}

/// `s` form-encoded.
pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
