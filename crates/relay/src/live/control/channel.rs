//! Running one control channel: the agent's `hello` is checked against the endpoint the
//! transport authenticated (never against what the agent claims), answered with `welcome`,
//! and then the channel carries what the hub sends, keep-alives both ways, and closes when
//! the agent is silent for `dead_after`, when a newer channel of the endpoint replaces it,
//! or when the endpoint is revoked.

use std::fmt::Display;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use portico_store::{EndpointState, StoreError};
use portico_tunnel::control::{ControlMessage, RefusalReason, CONTROL_VERSION};
use portico_tunnel::Role;
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};

use super::{Command, ControlHub};
use crate::live::directory::{EndpointKey, EndpointKind};

/// Why a channel ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEnd {
    /// The hello was refused (the agent was told why).
    Refused,
    /// The agent closed the channel or the transport failed.
    Closed,
    /// Nothing was heard for `dead_after`.
    Dead,
    /// The hub closed it: replaced by a newer channel, revoked, or shutting down.
    ClosedByRelay,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlChannelError {
    #[error("the control transport failed: {0}")]
    Transport(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

fn transport<E: Display>(error: E) -> ControlChannelError {
    ControlChannelError::Transport(error.to_string())
}

impl ControlHub {
    /// Serves the control channel of endpoint `tenant`/`endpoint` (as authenticated by the
    /// transport) until it ends. `inbound` yields the agent's text messages, `outbound`
    /// takes the relay's.
    pub async fn serve<S, K, E>(
        &self,
        tenant: &str,
        endpoint: &str,
        mut inbound: S,
        mut outbound: K,
    ) -> Result<ChannelEnd, ControlChannelError>
    where
        S: Stream<Item = Result<String, E>> + Unpin,
        K: Sink<String, Error = E> + Unpin,
        E: Display,
    {
        let key = EndpointKey::new(tenant, endpoint);
        if let Some(refusal) = self.check_hello(&key, &mut inbound).await? {
            tracing::info!(tenant, endpoint, ?refusal, "control hello refused");
            outbound.send(refusal.encode()).await.map_err(transport)?;
            let _ = outbound.close().await;
            return Ok(ChannelEnd::Refused);
        }
        let options = &self.inner.options;
        let keep_alive_secs = u32::try_from(options.keep_alive.as_secs().max(1)).unwrap_or(20);
        let welcome = ControlMessage::Welcome {
            version: CONTROL_VERSION,
            keep_alive_secs,
        };
        outbound.send(welcome.encode()).await.map_err(transport)?;
        let (id, mut commands) = self.register(&key);
        tracing::info!(tenant, endpoint, "control channel open");
        let end = self
            .run(&key, &mut commands, &mut inbound, &mut outbound)
            .await;
        self.unregister(&key, id);
        let _ = outbound.close().await;
        tracing::info!(tenant, endpoint, ?end, "control channel closed");
        end
    }

    async fn run<S, K, E>(
        &self,
        key: &EndpointKey,
        commands: &mut tokio::sync::mpsc::UnboundedReceiver<Command>,
        inbound: &mut S,
        outbound: &mut K,
    ) -> Result<ChannelEnd, ControlChannelError>
    where
        S: Stream<Item = Result<String, E>> + Unpin,
        K: Sink<String, Error = E> + Unpin,
        E: Display,
    {
        let options = self.inner.options.clone();
        // A zero period would make the intervals panic; a few milliseconds is the least.
        let floor = Duration::from_millis(10);
        let (keep_alive_every, recheck_every) =
            (options.keep_alive.max(floor), options.recheck.max(floor));
        // What is open now is announced at once.
        if let Err(error) = self.sync(key).await {
            tracing::warn!(endpoint = %key.name, %error, "could not announce open sessions");
        }
        let start = Instant::now();
        let mut keep_alive = interval_at(start + keep_alive_every, keep_alive_every);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut recheck = interval_at(start + recheck_every, recheck_every);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let mut nonce: u64 = 0;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send(message)) => {
                        outbound.send(message.encode()).await.map_err(transport)?;
                    }
                    Some(Command::Close(last)) => {
                        if let Some(message) = last {
                            outbound.send(message.encode()).await.map_err(transport)?;
                        }
                        return Ok(ChannelEnd::ClosedByRelay);
                    }
                    None => return Ok(ChannelEnd::ClosedByRelay),
                },
                message = inbound.next() => match message {
                    Some(Ok(text)) => {
                        heard = Instant::now();
                        if let Some(refusal) = self.on_message(key, &text) {
                            outbound.send(refusal.encode()).await.map_err(transport)?;
                            return Ok(ChannelEnd::Refused);
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(endpoint = %key.name, %error, "control transport failed");
                        return Ok(ChannelEnd::Closed);
                    }
                    None => return Ok(ChannelEnd::Closed),
                },
                _ = keep_alive.tick() => {
                    nonce = nonce.wrapping_add(1);
                    let ping = ControlMessage::KeepAlive { nonce };
                    outbound.send(ping.encode()).await.map_err(transport)?;
                }
                _ = recheck.tick() => {
                    if let Err(error) = self.sync(key).await {
                        tracing::warn!(endpoint = %key.name, %error, "could not recheck a control channel");
                    }
                }
                () = sleep_until(heard + options.dead_after) => {
                    tracing::info!(tenant = %key.tenant, endpoint = %key.name, "control channel silent; closing it");
                    return Ok(ChannelEnd::Dead);
                }
            }
        }
    }

    /// A message after the hello: keep-alives (and anything well-formed) count as life;
    /// a malformed message or a second hello is refused.
    fn on_message(&self, key: &EndpointKey, text: &str) -> Option<ControlMessage> {
        match ControlMessage::decode(text.as_bytes()) {
            Ok(ControlMessage::KeepAlive { .. }) => None,
            Ok(ControlMessage::Hello { .. }) => Some(ControlMessage::Refused {
                reason: RefusalReason::Malformed,
                message: "hello was already said on this channel".into(),
            }),
            Ok(other) => {
                tracing::debug!(endpoint = %key.name, message = ?other, "control message ignored");
                None
            }
            Err(error) => {
                tracing::info!(endpoint = %key.name, %error, "malformed control message");
                Some(error.refusal())
            }
        }
    }

    /// Reads and checks the hello; the refusal to send, if any.
    async fn check_hello<S, E>(
        &self,
        key: &EndpointKey,
        inbound: &mut S,
    ) -> Result<Option<ControlMessage>, ControlChannelError>
    where
        S: Stream<Item = Result<String, E>> + Unpin,
        E: Display,
    {
        let refused =
            |reason, message: String| Ok(Some(ControlMessage::Refused { reason, message }));
        let wait = self.inner.options.hello_timeout;
        let text = match tokio::time::timeout(wait, inbound.next()).await {
            Ok(Some(Ok(text))) => text,
            Ok(Some(Err(error))) => return Err(transport(error)),
            Ok(None) => return Err(ControlChannelError::Transport("closed before hello".into())),
            Err(_) => {
                return refused(
                    RefusalReason::Malformed,
                    format!("no hello within {}", seconds(wait)),
                )
            }
        };
        let (role, named) = match ControlMessage::decode(text.as_bytes()) {
            Ok(ControlMessage::Hello { role, endpoint, .. }) => (role, endpoint),
            Ok(_) => {
                return refused(
                    RefusalReason::Malformed,
                    "the first message must be hello".into(),
                )
            }
            Err(error) => return Ok(Some(error.refusal())),
        };
        let record = self.inner.store.endpoint(&key.tenant, &key.name).await?;
        let record = match record {
            Some(r) if r.state == EndpointState::Registered => r,
            Some(r) if r.state == EndpointState::Revoked => {
                return refused(
                    RefusalReason::Revoked,
                    format!("endpoint {} is revoked", key.name),
                )
            }
            _ => {
                return refused(
                    RefusalReason::Unauthorized,
                    format!("endpoint {} is not registered", key.name),
                )
            }
        };
        if named != key.name {
            return refused(
                RefusalReason::Unauthorized,
                format!(
                    "these credentials belong to endpoint {}, not {named}",
                    key.name
                ),
            );
        }
        let expected = match EndpointKind::from(&record.binding) {
            EndpointKind::Device => Role::Device,
            EndpointKind::Service => Role::Service,
        };
        if role != expected {
            return refused(
                RefusalReason::Unauthorized,
                format!(
                    "endpoint {} is a {} endpoint; its agent must say role {}",
                    key.name,
                    record.binding.kind(),
                    record.binding.kind()
                ),
            );
        }
        Ok(None)
    }
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs())
}
