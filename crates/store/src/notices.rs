//! Notices between the nodes that share one database (OPS-2): a node that changed
//! something others hold in memory (a Bayeux log entry to deliver, connection sessions to
//! announce to endpoints, the registry) says so with [`Store::notify`], and every node's
//! [`Store::notices`] hears it — itself included. On PostgreSQL they travel by
//! `LISTEN`/`NOTIFY` on one channel; on SQLite (one node) they stay in the process.
//!
//! A notice is a hint, not a message queue: a listener that was disconnected may have
//! missed some, so after reconnecting it hands out [`Notice::resync`], on which every
//! subscriber reads again what it holds. The database stays the truth.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::{Backend, Store};

/// The PostgreSQL channel all of Portico's notices travel on.
const CHANNEL: &str = "portico";
/// How many notices a slow subscriber may fall behind before it misses some (and sees
/// `Lagged`, which it treats as a resync).
const BACKLOG: usize = 1024;
/// PostgreSQL's limit on a notification's payload is 8000 bytes.
const MAX_PAYLOAD: usize = 7900;
/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// What changed: a topic (e.g. `bayeux`, `rs_sessions`, `registry`) and a payload the
/// topic's owner defines (e.g. a tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub topic: String,
    pub payload: String,
}

impl Notice {
    /// The topic of the notice handed out after notices may have been missed.
    pub const RESYNC: &'static str = "*";

    pub fn is_resync(&self) -> bool {
        self.topic == Self::RESYNC
    }

    fn resync() -> Notice {
        Notice {
            topic: Self::RESYNC.into(),
            payload: String::new(),
        }
    }
}

/// The notices of one `Store` and, on PostgreSQL, the task that listens for them; the task
/// ends when the last clone of the store is dropped.
pub(crate) struct Notices {
    sender: broadcast::Sender<Notice>,
    listener: Option<JoinHandle<()>>,
}

impl Notices {
    /// On PostgreSQL, starts listening at `url` (needs a Tokio runtime).
    pub(crate) fn start(backend: Backend, url: &str) -> Notices {
        let (sender, _) = broadcast::channel(BACKLOG);
        let listener = (backend == Backend::Postgres)
            .then(|| tokio::spawn(listen(url.to_string(), sender.clone())));
        Notices { sender, listener }
    }
}

impl Drop for Notices {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

/// Listens on [`CHANNEL`] for as long as it runs, connecting again after a loss (and then
/// handing out a resync).
async fn listen(url: String, sender: broadcast::Sender<Notice>) {
    let mut first = true;
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    if !first {
                        let _ = sender.send(Notice::resync());
                    }
                    first = false;
                    // `try_recv`, not `recv`: `recv` reconnects by itself after a lost
                    // connection, silently skipping what was sent meanwhile, so nobody
                    // would know to resync.
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                let _ = sender.send(parse(notification.payload()));
                            }
                            Ok(None) => {
                                tracing::warn!("lost the database notices; listening again");
                                break;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "lost the database notices; listening again");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot listen for database notices"),
            },
            Err(error) => tracing::warn!(%error, "cannot connect to listen for database notices"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// `topic` and `payload` travel as `topic\npayload`.
fn parse(text: &str) -> Notice {
    let (topic, payload) = text.split_once('\n').unwrap_or((text, ""));
    Notice {
        topic: topic.to_string(),
        payload: payload.to_string(),
    }
}

impl Store {
    /// Every notice from now on, from this node and (on PostgreSQL) from every other node
    /// on the database.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.sender.subscribe()
    }

    /// Tells every node (this one included) that `topic` changed. Call it after the change
    /// committed. The topic has no newline; the payload is at most 7900 bytes.
    pub async fn notify(&self, topic: &str, payload: &str) -> Result<(), StoreError> {
        if topic.contains('\n') || topic.is_empty() || payload.len() > MAX_PAYLOAD {
            return Err(StoreError::Invalid(format!(
                "a notice's topic is one non-empty line and its payload at most {MAX_PAYLOAD} bytes"
            )));
        }
        match self.inner.backend {
            Backend::Postgres => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(format!("{topic}\n{payload}"))
                    .execute(&self.inner.pool)
                    .await?;
            }
            Backend::Sqlite => {
                let _ = self.inner.notices.sender.send(Notice {
                    topic: topic.to_string(),
                    payload: payload.to_string(),
                });
            }
        }
        Ok(())
    }
}
