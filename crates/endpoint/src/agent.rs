//! The running agent (`portico endpoint run`): keeps the tunnel (`/mts/`) and the control
//! channel (`/ccf/`) to the backend up, reconnecting both with jittered backoff whenever
//! either ends, and keeps the listeners and permits the relay announces across reconnects.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portico_tunnel::tunnel::TunnelHandle;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{EndpointConfig, EndpointRole};
use crate::connect::{ConnectError, Dialer};
use crate::credentials::{Credentials, CredentialsError};
use crate::lanes::LanePool;
use crate::link::{self, LinkError};
use crate::listeners::ListenerSet;
use crate::permits::Permits;
use crate::reconnect::{self, Backoff};
use crate::token::{AccessToken, TokenError};

/// How long, after a reconnect, the relay has to announce a session again before its
/// listeners and permits are closed.
pub const DEFAULT_REANNOUNCE_GRACE: Duration = Duration::from_secs(15);
/// How often expired sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(
        "the credentials file {0} does not name the endpoint; register it again with \
         `portico endpoint register`, or add `endpoint = \"<name>\"` to it"
    )]
    NoEndpointName(PathBuf),
    #[error("the credentials file is for a {registered} endpoint, but the configuration says role = \"{configured}\"")]
    RoleMismatch {
        registered: String,
        configured: &'static str,
    },
}

/// What stays across reconnects: the listeners, the permits and the current tunnel.
pub(crate) struct Shared {
    pub listeners: Mutex<ListenerSet>,
    /// The spare lanes of the current connection.
    pub lanes: Arc<LanePool>,
    pub permits: Arc<Mutex<Permits>>,
    pub tunnel: watch::Sender<Option<TunnelHandle>>,
}

impl Shared {
    pub fn listeners(&self) -> std::sync::MutexGuard<'_, ListenerSet> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn permits(&self) -> std::sync::MutexGuard<'_, Permits> {
        self.permits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bearer token and when it was fetched; renewed at a (re)connect once past half its life,
/// or when the credentials changed (a rotation withdraws the client the token is for).
#[derive(Default)]
pub(crate) struct TokenCache {
    current: Option<(AccessToken, Instant)>,
    client_id: String,
}

impl TokenCache {
    pub fn usable(&self, now: Instant) -> Option<&str> {
        let (token, fetched) = self.current.as_ref()?;
        let lifetime = token.expires_in?;
        (now < *fetched + lifetime / 2).then_some(token.value.as_str())
    }

    pub fn store(&mut self, token: AccessToken, now: Instant) {
        self.current = Some((token, now));
    }

    /// Forgets the token when it was fetched for another client than `client_id`.
    pub fn for_client(&mut self, client_id: &str) {
        if self.client_id != client_id {
            self.current = None;
            self.client_id = client_id.to_string();
        }
    }

    /// The backend refused the token: fetch a new one next time.
    pub fn forget(&mut self) {
        self.current = None;
    }
}

pub struct Agent {
    pub(crate) config: EndpointConfig,
    /// Read again from the file before each token: a rotation (the agent's own, or
    /// `portico endpoint rotate`) replaces them there.
    credentials: Mutex<Credentials>,
    pub(crate) endpoint_name: String,
    pub(crate) dialer: Dialer,
    pub(crate) token_dialer: Dialer,
    backoff: Backoff,
    pub(crate) grace: Duration,
    pub(crate) shared: Arc<Shared>,
}

impl Agent {
    /// Reads the credentials and prepares the dialers; nothing is contacted yet.
    pub fn new(config: EndpointConfig) -> Result<Self, AgentError> {
        let dialer = Dialer::from_config(&config)?;
        Self::with_dialer(config, dialer)
    }

    /// As [`Agent::new`] with a given dialer to the backend (its proxy and trusted roots
    /// are used for the token endpoint too).
    pub fn with_dialer(config: EndpointConfig, dialer: Dialer) -> Result<Self, AgentError> {
        let credentials = Credentials::load(&config.credentials_file)?;
        let endpoint_name = credentials
            .endpoint
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| AgentError::NoEndpointName(config.credentials_file.clone()))?;
        let configured = match config.role {
            EndpointRole::Device => "device",
            EndpointRole::Service => "service",
        };
        if let Some(kind) = &credentials.kind {
            if kind != configured {
                return Err(AgentError::RoleMismatch {
                    registered: kind.clone(),
                    configured,
                });
            }
        }
        let token_dialer = dialer.towards(config.token_url.clone());
        let (tunnel, tunnel_slot) = watch::channel(None);
        let lanes = Arc::new(LanePool::default());
        let shared = Arc::new(Shared {
            listeners: Mutex::new(ListenerSet::new(
                config.listen_address,
                tunnel_slot,
                lanes.clone(),
            )),
            lanes,
            permits: Arc::new(Mutex::new(Permits::default())),
            tunnel,
        });
        Ok(Agent {
            config,
            credentials: Mutex::new(credentials),
            endpoint_name,
            dialer,
            token_dialer,
            backoff: Backoff::default(),
            grace: DEFAULT_REANNOUNCE_GRACE,
            shared,
        })
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long after a reconnect a session may go unannounced before it is closed.
    pub fn with_reannounce_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn listen_address(&self) -> IpAddr {
        self.config.listen_address
    }

    /// The credentials as last read from the file. A file that cannot be read now (being
    /// replaced, or broken by hand) leaves the last good ones in use.
    pub(crate) fn credentials(&self) -> Credentials {
        let mut held = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match Credentials::load(&self.config.credentials_file) {
            Ok(fresh) if fresh.endpoint == held.endpoint && fresh.kind == held.kind => {
                *held = fresh;
            }
            Ok(_) => tracing::error!(
                "the credentials file now names another endpoint; restart the agent to use it"
            ),
            Err(error) => tracing::warn!(%error, "keeping the credentials read before"),
        }
        held.clone()
    }

    pub(crate) async fn token(&self, cache: &mut TokenCache) -> Result<String, TokenError> {
        let credentials = self.credentials();
        cache.for_client(&credentials.client_id);
        if let Some(token) = cache.usable(Instant::now()) {
            return Ok(token.to_string());
        }
        let path = self.config.token_url.path_url("");
        let token = self
            .token_dialer
            .fetch_token_at(&path, &credentials)
            .await?;
        let value = token.value.clone();
        cache.store(token, Instant::now());
        Ok(value)
    }

    /// Runs until `shutdown` fires: connects, serves, reconnects with backoff, never gives
    /// up (an operator may register the endpoint again after a revocation).
    pub async fn run(self, shutdown: CancellationToken) {
        let sweeper = tokio::spawn(sweep(self.shared.clone(), self.grace, shutdown.clone()));
        let tokens = tokio::sync::Mutex::new(TokenCache::default());
        reconnect::run(self.backoff, shutdown.clone(), || async {
            let mut tokens = tokens.lock().await;
            let result = link::run_once(&self, &mut tokens).await;
            if let Err(LinkError::Refused { reason, message }) = &result {
                tracing::error!(?reason, %message, "the backend refused this endpoint; retrying with backoff in case it is registered again");
            }
            if matches!(&result, Err(e) if e.is_unauthorized()) {
                tokens.forget();
            }
            result
        })
        .await;
        sweeper.abort();
        // The attempt was dropped mid-way: end its tunnel here, telling the relay why.
        if let Some(tunnel) = self.shared.tunnel.send_replace(None) {
            tunnel.close(portico_tunnel::GoAwayReason::ShuttingDown);
        }
        self.shared.listeners().close_all();
    }
}

async fn sweep(shared: Arc<Shared>, grace: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        for session in shared.listeners().sweep(now, grace) {
            tracing::info!(%session, "session ended (timeout or not announced again); listeners closed");
        }
        for session in shared.permits().sweep(now, grace) {
            tracing::info!(%session, "permit ended (timeout or not announced again)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_past_half_its_lifetime() {
        let t0 = Instant::now();
        let mut cache = TokenCache::default();
        assert!(cache.usable(t0).is_none());
        let token = |expires| AccessToken {
            value: "t".into(),
            expires_in: expires,
        };
        cache.store(token(Some(Duration::from_secs(100))), t0);
        assert_eq!(cache.usable(t0 + Duration::from_secs(49)), Some("t"));
        assert!(cache.usable(t0 + Duration::from_secs(50)).is_none());
        cache.store(token(None), t0);
        assert!(
            cache.usable(t0).is_none(),
            "an unknown lifetime is renewed every time"
        );
        cache.store(token(Some(Duration::from_secs(100))), t0);
        cache.forget();
        assert!(cache.usable(t0).is_none());
    }

    #[test]
    fn a_token_of_other_credentials_is_not_used() {
        let t0 = Instant::now();
        let mut cache = TokenCache::default();
        cache.for_client("ep-1");
        cache.store(
            AccessToken {
                value: "t".into(),
                expires_in: Some(Duration::from_secs(100)),
            },
            t0,
        );
        cache.for_client("ep-1");
        assert_eq!(cache.usable(t0), Some("t"));
        cache.for_client("ep-2");
        assert!(cache.usable(t0).is_none(), "rotated: fetch anew");
    }
}
