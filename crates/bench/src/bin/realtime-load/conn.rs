//! One HTTP/1.1 keep-alive connection to Portico's plain-HTTP listener on loopback, with a
//! `Host` header naming the device host (no TLS: what is measured is the server's Bayeux
//! and REST work, not the handshake cost). A connection the server closed is opened again
//! on the next request, and counted.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpSocket;

/// Where requests go and how they are addressed.
#[derive(Debug, Clone)]
pub struct Target {
    /// The listener's address (loopback).
    pub server: SocketAddr,
    /// The `Host` header, e.g. `southgate.eu1.portico.localhost`.
    pub host: String,
}

pub struct Conn {
    target: Target,
    /// The local address this connection's socket binds to (one of 127.0.0.x), so that many
    /// clients do not run out of ephemeral ports of one source address.
    source: IpAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// How many times a connection was opened again after the first.
    pub reopened: u64,
    opened: bool,
}

impl Conn {
    pub fn new(target: Target, source: IpAddr) -> Conn {
        Conn {
            target,
            source,
            sender: None,
            reopened: 0,
            opened: false,
        }
    }

    async fn open(&mut self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let socket = match self.target.server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket
            .bind(SocketAddr::new(self.source, 0))
            .with_context(|| format!("cannot bind a socket to {}", self.source))?;
        let stream = socket
            .connect(self.target.server)
            .await
            .with_context(|| format!("cannot connect to {}", self.target.server))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("the HTTP/1.1 handshake failed")?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the sender is dropped; the next
            // request then opens a new one.
            let _ = connection.await;
        });
        if self.opened {
            self.reopened += 1;
        }
        self.opened = true;
        Ok(sender)
    }

    /// Sends `body` as JSON to `path` and reads the whole answer, within `timeout`.
    pub async fn post_json(
        &mut self,
        path: &str,
        authorization: Option<&str>,
        body: Bytes,
        timeout: Duration,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        match tokio::time::timeout(timeout, self.exchange(path, authorization, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                bail!("no answer from {path} within {} s", timeout.as_secs())
            }
        }
    }

    async fn exchange(
        &mut self,
        path: &str,
        authorization: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.open().await?,
        };
        sender.ready().await.context("the connection closed")?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, &self.target.host)
            .header(header::CONTENT_TYPE, crate::protocol::JSON)
            .header(header::ACCEPT, crate::protocol::JSON);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let response = sender
            .send_request(request.body(Full::new(body))?)
            .await
            .with_context(|| format!("POST {path} failed"))?;
        let status = response.status();
        let keep_alive = !response
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of POST {path} failed"))?
            .to_bytes();
        if keep_alive {
            self.sender = Some(sender);
        }
        Ok((status, body))
    }
}
