//! One connection to the backend: the tunnel on `/mts/` first, then the control channel on
//! `/ccf/` (contract: hello, welcome, then connect/permit/disconnect, keep-alives both ways).
//! It ends when either socket ends; the caller reconnects both.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_tunnel::control::{ControlMessage, RefusalReason, CONTROL_VERSION};
use portico_tunnel::tunnel::{Tunnel, TunnelError};
use portico_tunnel::GoAwayReason;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::agent::{Agent, TokenCache};
use crate::connect::ConnectError;
use crate::dialing;
use crate::token::TokenError;
use crate::transport::WebSocketTransport;

pub const TUNNEL_PATH: &str = "/mts/";
pub const CONTROL_PATH: &str = "/ccf/";

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("fetching the token failed: {0}")]
    Token(#[from] TokenError),
    #[error("opening {path} failed: {source}")]
    Open {
        path: &'static str,
        source: ConnectError,
    },
    #[error("the backend refused this endpoint ({reason:?}): {message}")]
    Refused {
        reason: RefusalReason,
        message: String,
    },
    #[error("the control channel: {0}")]
    Control(String),
    #[error("nothing heard on the control channel for {} s", .0.as_secs())]
    Silent(Duration),
    #[error("the tunnel ended: {0}")]
    Tunnel(TunnelError),
}

impl LinkError {
    /// The backend did not accept the token: it is fetched anew on the next attempt.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            LinkError::Open {
                source: ConnectError::Unauthorized { .. },
                ..
            }
        )
    }
}

fn control_error(what: impl std::fmt::Display) -> LinkError {
    LinkError::Control(what.to_string())
}

/// Connects, says hello and serves until either socket ends.
pub(crate) async fn run_once(agent: &Agent, tokens: &mut TokenCache) -> Result<(), LinkError> {
    let token = agent.token(tokens).await?;
    let (mts, offered) = agent
        .dialer
        .open_with_headers(TUNNEL_PATH, &token)
        .await
        .map_err(|source| LinkError::Open {
            path: TUNNEL_PATH,
            source,
        })?;
    let offers = |header| offered.get(header).is_some_and(|v| v == "1");
    let lanes_offered = offers(portico_tunnel::lane::LANES_OFFERED);
    let framed_lanes = offers(portico_tunnel::lane::framed::OFFERED);
    let moves = offers(portico_tunnel::lane::MOVES_OFFERED);
    let role = agent.config.role.tunnel_role();
    let (tunnel, incoming) = Tunnel::new(
        WebSocketTransport::new(mts),
        role,
        agent.config.tunnel_config(),
    );
    let result = async {
        let mut ccf = agent
            .dialer
            .open(CONTROL_PATH, &token)
            .await
            .map_err(|source| LinkError::Open {
                path: CONTROL_PATH,
                source,
            })?;
        let hello = ControlMessage::Hello {
            version: CONTROL_VERSION,
            role,
            endpoint: agent.endpoint_name.clone(),
            agent: format!("portico {}", env!("CARGO_PKG_VERSION")),
        };
        ccf.send(Message::text(hello.encode()))
            .await
            .map_err(control_error)?;
        let keep_alive = welcome(&mut ccf, agent.config.dead_after).await?;
        tracing::info!(endpoint = %agent.endpoint_name, "connected to the backend");
        let now = Instant::now();
        agent.shared.listeners().reconnected(now);
        agent.shared.permits().reconnected(now);
        agent.shared.tunnel.send_replace(Some(tunnel.clone()));
        let dialer = tokio::spawn(dialing::serve_incoming(
            incoming,
            agent.shared.permits.clone(),
            agent.config.allow.clone(),
            agent.shared.lanes.clone(),
        ));
        // Rotation (when due) runs beside the connection: it never tears the tunnel down.
        // So do the spare lanes, for as long as the connection serves.
        let serving = async {
            // Only a relay that offers lanes gets them (`LANES_OFFERED`).
            let spares = async {
                match lanes_offered {
                    true => crate::lanes::maintain(agent, tokens, framed_lanes, moves).await,
                    false => std::future::pending().await,
                }
            };
            tokio::select! {
                served = serve(agent, &mut ccf, &tunnel, keep_alive) => served,
                never = spares => match never {},
            }
        };
        let (served, ()) = tokio::join!(serving, crate::rotate::maintain_for(agent));
        dialer.abort();
        let _ = ccf.close(None).await;
        served
    }
    .await;
    agent.shared.tunnel.send_replace(None);
    agent.shared.lanes.clear();
    tunnel.close(GoAwayReason::ShuttingDown);
    result
}

/// Waits for the relay's answer to the hello; returns the keep-alive interval it asks for.
async fn welcome(
    ccf: &mut crate::connect::BackendSocket,
    wait: Duration,
) -> Result<Duration, LinkError> {
    let answer = tokio::time::timeout(wait, ccf.next())
        .await
        .map_err(|_| control_error("no answer to the hello"))?;
    match next_message(answer)? {
        Some(ControlMessage::Welcome {
            keep_alive_secs, ..
        }) => Ok(Duration::from_secs(u64::from(keep_alive_secs))),
        Some(ControlMessage::Refused { reason, message }) => {
            Err(LinkError::Refused { reason, message })
        }
        Some(other) => Err(control_error(format!(
            "expected a welcome, got {}",
            kind(&other)
        ))),
        None => Err(control_error("closed before answering the hello")),
    }
}

/// Reads one control message; `Ok(None)` when the channel closed. A WebSocket ping or pong
/// is reported as a keep-alive: it carries no message, but it is a sign of life.
fn next_message(
    item: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<ControlMessage>, LinkError> {
    match item {
        None | Some(Ok(Message::Close(_))) => Ok(None),
        Some(Ok(Message::Text(text))) => ControlMessage::decode(text.as_bytes())
            .map(Some)
            .map_err(control_error),
        Some(Ok(Message::Binary(_))) => {
            Err(control_error("a binary message on the control channel"))
        }
        Some(Ok(_)) => Ok(Some(ControlMessage::KeepAlive { nonce: 0 })),
        Some(Err(error)) => Err(control_error(error)),
    }
}

fn kind(message: &ControlMessage) -> &'static str {
    match message {
        ControlMessage::Hello { .. } => "hello",
        ControlMessage::Welcome { .. } => "welcome",
        ControlMessage::Config { .. } => "config",
        ControlMessage::Connect { .. } => "connect",
        ControlMessage::Permit { .. } => "permit",
        ControlMessage::Disconnect { .. } => "disconnect",
        ControlMessage::KeepAlive { .. } => "keep_alive",
        ControlMessage::Refused { .. } => "refused",
    }
}

async fn serve(
    agent: &Agent,
    ccf: &mut crate::connect::BackendSocket,
    tunnel: &portico_tunnel::tunnel::TunnelHandle,
    keep_alive: Duration,
) -> Result<(), LinkError> {
    let dead_after = agent.config.dead_after;
    let mut ping = tokio::time::interval(keep_alive);
    let mut nonce: u64 = 0;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            error = tunnel.closed() => return Err(LinkError::Tunnel(error)),
            _ = ping.tick() => {
                nonce = nonce.wrapping_add(1);
                ccf.send(Message::text(ControlMessage::KeepAlive { nonce }.encode()))
                    .await
                    .map_err(control_error)?;
            }
            _ = tokio::time::sleep_until(last_heard + dead_after) => {
                return Err(LinkError::Silent(dead_after));
            }
            item = ccf.next() => {
                last_heard = Instant::now();
                match next_message(item)? {
                    None => return Err(control_error("closed by the backend")),
                    Some(message) => handle(agent, message)?,
                }
            }
        }
    }
}

fn handle(agent: &Agent, message: ControlMessage) -> Result<(), LinkError> {
    let now = Instant::now();
    match message {
        ControlMessage::Connect {
            session,
            listeners,
            timeout_secs,
        } => {
            let outcomes = agent.shared.listeners().connect(
                &session,
                &listeners,
                Duration::from_secs(timeout_secs),
                now,
            );
            let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
            if failed > 0 {
                tracing::error!(%session, failed, "some listeners of the session could not be opened");
            }
        }
        ControlMessage::Permit {
            session,
            targets,
            timeout_secs,
        } => {
            tracing::info!(%session, ?targets, timeout_secs, "permit");
            agent.shared.permits().grant(
                &session,
                &targets,
                Duration::from_secs(timeout_secs),
                now,
            );
        }
        ControlMessage::Disconnect { session, reason } => {
            tracing::info!(%session, ?reason, "session ended by the backend");
            agent.shared.listeners().disconnect(&session);
            agent.shared.permits().revoke(&session);
        }
        ControlMessage::KeepAlive { .. } => {}
        ControlMessage::Refused { reason, message } => {
            return Err(LinkError::Refused { reason, message })
        }
        other => tracing::debug!(kind = kind(&other), "control message ignored"),
    }
    Ok(())
}
