//! One long-polling Bayeux client on `/notification/operations`, the way a device runs it:
//! handshake, subscribe to its own device's channel, then connect after connect on one
//! keep-alive HTTP connection, handshaking again when the server says it does not know the
//! client (`402::`, `advice.reconnect: handshake`). Every operation it receives is
//! timestamped and handed to the collector.

use crate::args::Credentials;
use crate::conn::Conn;
use crate::protocol::{self, MetaReply, Reply};
use crate::report::operation_seq;
use bytes::Bytes;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

/// Attempts a client makes to get subscribed at all before it counts as one the machine
/// could not hold (sockets or ports exhausted, server refusing).
const FIRST_ATTEMPTS: u32 = 3;
/// Pause after a failed request before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What all clients share: the clock, the run's nonce, where receipts go, and counters.
pub struct Shared {
    pub started: Instant,
    pub nonce: String,
    pub receipts: mpsc::UnboundedSender<(usize, u64)>,
    pub stop: CancellationToken,
    /// Clients that have subscribed and made their first connect.
    pub ready: AtomicUsize,
    /// The same, by client index: operations go to these clients' devices only.
    pub ready_clients: Vec<AtomicBool>,
    /// Clients that gave up before they were ready.
    pub failed: AtomicUsize,
    /// Handshakes made after a client's first: on the server's advice, or after a failed
    /// handshake or subscribe.
    pub rehandshakes: AtomicU64,
    /// Requests that failed or were answered with an error other than `402::`.
    pub errors: AtomicU64,
    /// Published messages on another channel than the client's own.
    pub foreign: AtomicU64,
    pub request_timeout: Duration,
    pub poll_timeout: Duration,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// Why a session ended.
enum End {
    /// The server asked for a new handshake, or a request failed.
    Again,
    Stopped,
}

pub struct Client {
    index: usize,
    pub device: String,
    pub credentials: Credentials,
    pub conn: Conn,
    pub shared: Arc<Shared>,
    next_id: u64,
    ready: bool,
}

impl Client {
    pub fn new(
        index: usize,
        device: String,
        credentials: Credentials,
        conn: Conn,
        shared: Arc<Shared>,
    ) -> Self {
        Client {
            index,
            device,
            credentials,
            conn,
            shared,
            next_id: 0,
            ready: false,
        }
    }

    /// Runs until stopped. `permit` (the bound on clients getting ready at once) is given
    /// back once this client is ready or has given up.
    pub async fn run(mut self, permit: OwnedSemaphorePermit) -> u64 {
        let mut permit = Some(permit);
        let mut attempts = 0;
        let mut sessions = 0u64;
        while !self.shared.stop.is_cancelled() {
            if !self.ready {
                attempts += 1;
                if attempts > FIRST_ATTEMPTS {
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            sessions += 1;
            if sessions > 1 {
                self.shared.rehandshakes.fetch_add(1, Ordering::Relaxed);
            }
            match self.session(&mut permit).await {
                End::Stopped => break,
                End::Again => {}
            }
        }
        self.conn.reopened
    }

    /// One Bayeux session: handshake, subscribe, connects until the server forgets us.
    async fn session(&mut self, permit: &mut Option<OwnedSemaphorePermit>) -> End {
        let token = self.credentials.token.clone();
        let id = self.id();
        let Some(metas) = self
            .exchange(protocol::handshake(id, &token), self.shared.request_timeout)
            .await
        else {
            return self.pause().await;
        };
        let Some(client_id) = metas
            .iter()
            .find(|m| m.channel == "/meta/handshake" && m.successful)
            .and_then(|m| m.client_id.clone())
        else {
            return self.refused(&metas).await;
        };

        let channel = protocol::device_channel(&self.device);
        let id = self.id();
        let Some(metas) = self
            .exchange(
                protocol::subscribe(id, &client_id, &channel, &token),
                self.shared.request_timeout,
            )
            .await
        else {
            return self.pause().await;
        };
        if !metas
            .iter()
            .any(|m| m.channel == "/meta/subscribe" && m.successful)
        {
            return self.refused(&metas).await;
        }

        let mut failures = 0;
        loop {
            let id = self.id();
            // The first connect after a handshake is answered at once; later ones are held.
            let timeout = if self.ready {
                self.shared.poll_timeout
            } else {
                self.shared.request_timeout
            };
            let Some(metas) = self
                .exchange(protocol::connect(id, &client_id), timeout)
                .await
            else {
                // A lost poll does not end the session (the server keeps it for a grace
                // period, with what was queued meanwhile): poll again with the same client
                // id, as CometD clients do; the server says `402::` if it forgot us.
                failures += 1;
                if !self.ready && failures >= FIRST_ATTEMPTS {
                    return End::Again;
                }
                match self.pause().await {
                    End::Again => continue,
                    End::Stopped => return End::Stopped,
                }
            };
            failures = 0;
            let Some(connect) = metas.iter().find(|m| m.channel == "/meta/connect") else {
                // Deliveries without the connect's own reply: poll again.
                continue;
            };
            if !connect.successful {
                return self.refused(&metas).await;
            }
            if !self.ready {
                self.ready = true;
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
                if let Some(flag) = self.shared.ready_clients.get(self.index) {
                    flag.store(true, Ordering::Relaxed);
                }
                permit.take();
            }
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends one request and records the operations in its reply; the meta replies, or
    /// `None` when the request failed or the run was stopped.
    async fn exchange(&mut self, messages: Value, timeout: Duration) -> Option<Vec<MetaReply>> {
        let body = Bytes::from(messages.to_string());
        let answer = tokio::select! {
            _ = self.shared.stop.cancelled() => return None,
            answer = self.conn.post_json(protocol::OPERATIONS_ENDPOINT, None, body, timeout) => answer,
        };
        let received_us = self.shared.now_us();
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(e) => return self.failed(&format!("{e:#}")),
        };
        if !status.is_success() {
            return self.failed(&format!("answered {status}"));
        }
        let replies = match protocol::parse_replies(&body) {
            Ok(replies) => replies,
            Err(e) => return self.failed(&format!("{e:#}")),
        };
        let own = protocol::device_channel(&self.device);
        let mut metas = Vec::new();
        for reply in replies {
            match reply {
                Reply::Meta(meta) => metas.push(meta),
                Reply::Delivery { channel, .. } if channel != own => {
                    self.shared.foreign.fetch_add(1, Ordering::Relaxed);
                }
                Reply::Delivery { text, .. } => {
                    if let Some(seq) = text.and_then(|t| operation_seq(&self.shared.nonce, &t)) {
                        let _ = self.shared.receipts.send((seq, received_us));
                    }
                }
            }
        }
        Some(metas)
    }

    fn failed(&self, why: &str) -> Option<Vec<MetaReply>> {
        let errors = self.shared.errors.fetch_add(1, Ordering::Relaxed);
        // The first few say what goes wrong; thousands of the same would drown the output.
        if errors < 5 {
            eprintln!("realtime-load: device {}: {why}", self.device);
        }
        None
    }

    /// A meta reply said no: a new handshake at once if the server asks for one, else after
    /// its advised interval (or a pause).
    async fn refused(&mut self, metas: &[MetaReply]) -> End {
        let failure = metas.iter().find(|m| !m.successful);
        if failure.is_some_and(|m| m.rehandshake) {
            return End::Again;
        }
        if failure.is_some_and(|m| m.give_up) {
            // `advice.reconnect: none`: the server wants this client gone.
            eprintln!(
                "realtime-load: device {}: the server advised no reconnect",
                self.device
            );
            if !self.ready {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
            }
            return End::Stopped;
        }
        let errors = self.shared.errors.fetch_add(1, Ordering::Relaxed);
        if errors < 5 {
            let error = failure
                .and_then(|m| m.error.as_deref())
                .unwrap_or("no reply");
            eprintln!("realtime-load: device {}: refused: {error}", self.device);
        }
        let pause = failure
            .and_then(|m| m.interval_ms)
            .map_or(RETRY_PAUSE, Duration::from_millis);
        self.sleep(pause).await
    }

    async fn pause(&mut self) -> End {
        self.sleep(RETRY_PAUSE).await
    }

    async fn sleep(&self, pause: Duration) -> End {
        tokio::select! {
            _ = self.shared.stop.cancelled() => End::Stopped,
            _ = tokio::time::sleep(pause) => End::Again,
        }
    }
}
