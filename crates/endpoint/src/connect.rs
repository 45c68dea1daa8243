//! Opens one WebSocket to the backend: TCP (to the backend, or to the proxy followed by
//! `CONNECT`), then TLS verified against the trusted roots with the backend's host name, then
//! the WebSocket upgrade with the endpoint's bearer token.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use portico_fair::bulk::MovableTcp;
use portico_fair::Fair;
use portico_tunnel::lane::framed::{self, FramedLane};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::WebSocketStream;

use crate::config::{BackendUrl, EndpointConfig, ProxyUrl};
use crate::proxy::{self, ProxyError};
use crate::tls::{self, RecordSlot, TlsSetupError, TrustRoots};

/// How long each step (TCP, proxy answer, TLS, upgrade) may take before the attempt fails.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// An open WebSocket to the backend. Its connection takes fair turns (`portico_fair`): a
/// tunnel or lane carrying a bulk stream yields to the agent's other tasks every turn, so an
/// interactive stream beside it is not kept waiting (docs/tunnel.md "Fair turns").
pub type BackendSocket = WebSocketStream<Fair<TlsStream<MovableTcp>>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach the proxy {proxy}: {source}")]
    ProxyUnreachable {
        proxy: String,
        source: std::io::Error,
    },
    #[error("cannot reach the backend {backend}: {source}")]
    BackendUnreachable {
        backend: String,
        source: std::io::Error,
    },
    #[error("proxy {proxy}: {source}")]
    Proxy {
        proxy: String,
        #[source]
        source: ProxyError,
    },
    #[error(
        "the certificate presented for {host} does not verify ({reason}){issued_by}: the \
         connection is probably intercepted by a TLS-inspecting proxy. Ask for {host} to be \
         exempted from TLS inspection, or, if that proxy's CA is meant to be trusted, name it \
         in `ca_file`",
        issued_by = issued_by(.issuer)
    )]
    Intercepted {
        host: String,
        reason: String,
        issuer: Option<String>,
    },
    #[error("TLS handshake with {backend} failed: {source}")]
    Tls {
        backend: String,
        source: std::io::Error,
    },
    #[error("the backend refused the endpoint's credentials ({status})")]
    Unauthorized { status: StatusCode },
    #[error("the backend refused the WebSocket upgrade on {url} ({status})")]
    UpgradeRefused { url: String, status: StatusCode },
    #[error("WebSocket handshake on {url} failed: {source}")]
    WebSocket {
        url: String,
        source: Box<tungstenite::Error>,
    },
    #[error("the lane upgrade on {url} failed: {reason}")]
    LaneUpgrade { url: String, reason: String },
    #[error("the bearer token cannot be sent in a header")]
    BadToken,
    #[error("{step} took longer than {} s", .after.as_secs())]
    Timeout { step: &'static str, after: Duration },
    #[error(transparent)]
    Setup(#[from] TlsSetupError),
}

fn issued_by(issuer: &Option<String>) -> String {
    match issuer {
        Some(name) => format!(", issued by \"{name}\""),
        None => String::new(),
    }
}

/// Everything needed to dial the backend, prepared once and reused for every attempt.
#[derive(Clone, Debug)]
pub struct Dialer {
    backend: BackendUrl,
    proxy: Option<ProxyUrl>,
    roots: TrustRoots,
    step_timeout: Duration,
}

impl Dialer {
    /// From the agent's configuration: the system's roots plus the configured CA file.
    pub fn from_config(config: &EndpointConfig) -> Result<Self, ConnectError> {
        let roots = TrustRoots::system_and(config.ca_file.as_deref())?;
        Ok(Dialer::new(
            config.backend.clone(),
            config.proxy.clone(),
            roots,
        ))
    }

    pub fn new(backend: BackendUrl, proxy: Option<ProxyUrl>, roots: TrustRoots) -> Self {
        Dialer {
            backend,
            proxy,
            roots,
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }

    pub fn with_step_timeout(mut self, step_timeout: Duration) -> Self {
        self.step_timeout = step_timeout;
        self
    }

    /// The same way out (proxy, trusted roots, timeouts) to another host of the deployment:
    /// the token endpoint or the gateway API.
    pub fn towards(&self, url: BackendUrl) -> Dialer {
        Dialer {
            backend: url,
            ..self.clone()
        }
    }

    pub fn backend(&self) -> &BackendUrl {
        &self.backend
    }

    /// Opens the WebSocket on `path` (e.g. `/ccf/`), authenticated with `token`.
    pub async fn open(&self, path: &str, token: &str) -> Result<BackendSocket, ConnectError> {
        Ok(self.open_with_headers(path, token).await?.0)
    }

    /// As [`Dialer::open`], with the headers of the backend's `101` answer (what it offers).
    pub async fn open_with_headers(
        &self,
        path: &str,
        token: &str,
    ) -> Result<(BackendSocket, http::HeaderMap), ConnectError> {
        let tls = self.tls_to_backend().await?;
        self.upgrade(tls, path, token).await
    }

    /// Opens a framed lane on `path` (`portico_tunnel::lane::framed`): the same connection
    /// as a WebSocket's, upgraded to `portico-lane` instead, whose bytes then carry the
    /// lane's frames as they are.
    pub async fn open_framed_lane(
        &self,
        path: &str,
        token: &str,
    ) -> Result<FramedLane<Fair<TlsStream<MovableTcp>>>, ConnectError> {
        let tls = self.tls_to_backend().await?;
        self.step("the lane upgrade", self.upgrade_to_lane(tls, path, token))
            .await?
    }

    async fn upgrade_to_lane(
        &self,
        tls: TlsStream<MovableTcp>,
        path: &str,
        token: &str,
    ) -> Result<FramedLane<Fair<TlsStream<MovableTcp>>>, ConnectError> {
        let url = self.backend.websocket_url(path);
        let failed = |reason: &dyn std::fmt::Display| ConnectError::LaneUpgrade {
            url: url.clone(),
            reason: reason.to_string(),
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(Fair::new(tls)))
                .await
                .map_err(|e| failed(&e))?;
        // The connection's driver ends once it has handed the connection over.
        let driver = tokio::spawn(connection.with_upgrades());
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ConnectError::BadToken)?;
        let request = http::Request::get(self.backend.path_url(path))
            .header(header::HOST, self.backend.authority())
            .header(header::AUTHORIZATION, bearer)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, framed::PROTOCOL)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|_| failed(&"the request cannot be built from the backend's URL"))?;
        let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
        let switched_to_lane = response
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|protocol| {
                protocol
                    .as_bytes()
                    .eq_ignore_ascii_case(framed::PROTOCOL.as_bytes())
            });
        match response.status() {
            StatusCode::SWITCHING_PROTOCOLS if switched_to_lane => {}
            StatusCode::SWITCHING_PROTOCOLS => {
                driver.abort();
                return Err(failed(
                    &"the answer switched to another protocol than portico-lane",
                ));
            }
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                driver.abort();
                return Err(ConnectError::Unauthorized { status });
            }
            status => {
                driver.abort();
                return Err(ConnectError::UpgradeRefused { url, status });
            }
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(|e| failed(&e))?;
        // The connection itself, to take fair turns and move to the bulk runtime as a
        // WebSocket lane's does; and what was read past the answer, the lane's first bytes.
        let parts = upgraded
            .downcast::<TokioIo<Fair<TlsStream<MovableTcp>>>>()
            .map_err(|_| failed(&"the upgraded connection is not the one handed over"))?;
        Ok(FramedLane::new(parts.io.into_inner(), parts.read_buf))
    }

    /// A verified TLS stream to the backend, through the proxy when there is one.
    pub(crate) async fn tls_to_backend(&self) -> Result<TlsStream<MovableTcp>, ConnectError> {
        let tcp = self.tcp_to_backend().await?;
        self.tls(tcp).await
    }

    /// A TCP stream that reaches the backend: directly, or through the proxy's tunnel.
    async fn tcp_to_backend(&self) -> Result<TcpStream, ConnectError> {
        let Some(proxy) = &self.proxy else {
            let stream = self
                .step(
                    "connecting to the backend",
                    TcpStream::connect((self.backend.host(), self.backend.port())),
                )
                .await?
                .map_err(|source| ConnectError::BackendUnreachable {
                    backend: self.backend.to_string(),
                    source,
                })?;
            tune_tunnel_socket(&stream);
            return Ok(stream);
        };
        let mut stream = self
            .step(
                "connecting to the proxy",
                TcpStream::connect((proxy.host(), proxy.port())),
            )
            .await?
            .map_err(|source| ConnectError::ProxyUnreachable {
                proxy: proxy.to_string(),
                source,
            })?;
        tune_tunnel_socket(&stream);
        let target = self.backend.authority();
        self.step(
            "waiting for the proxy's answer",
            proxy::open_tunnel(&mut stream, &target, proxy.credentials()),
        )
        .await?
        .map_err(|source| ConnectError::Proxy {
            proxy: proxy.to_string(),
            source,
        })?;
        Ok(stream)
    }

    async fn tls(&self, tcp: TcpStream) -> Result<TlsStream<MovableTcp>, ConnectError> {
        let slot = RecordSlot::default();
        let config = tls::client_config(&self.roots, slot.clone())?;
        let name = rustls::pki_types::ServerName::try_from(self.backend.host().to_string())
            .map_err(|e| ConnectError::Tls {
                backend: self.backend.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })?;
        // A lane that turns bulk takes its connection to the bulk runtime.
        let handshake = TlsConnector::from(config).connect(name, MovableTcp::new(tcp));
        match self.step("the TLS handshake", handshake).await? {
            Ok(stream) => Ok(stream),
            Err(source) => {
                let rejection = slot.lock().ok().and_then(|record| record.rejection());
                Err(match rejection {
                    Some(r) => ConnectError::Intercepted {
                        host: self.backend.host().to_string(),
                        reason: r.reason,
                        issuer: r.issuer,
                    },
                    None => ConnectError::Tls {
                        backend: self.backend.to_string(),
                        source,
                    },
                })
            }
        }
    }

    async fn upgrade(
        &self,
        tls: TlsStream<MovableTcp>,
        path: &str,
        token: &str,
    ) -> Result<(BackendSocket, http::HeaderMap), ConnectError> {
        let url = self.backend.websocket_url(path);
        let ws_error = |source: tungstenite::Error| match source {
            tungstenite::Error::Http(response)
                if matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                ConnectError::Unauthorized {
                    status: response.status(),
                }
            }
            tungstenite::Error::Http(response) => ConnectError::UpgradeRefused {
                url: url.clone(),
                status: response.status(),
            },
            other => ConnectError::WebSocket {
                url: url.clone(),
                source: Box::new(other),
            },
        };
        let mut request = url.as_str().into_client_request().map_err(ws_error)?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ConnectError::BadToken)?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
        // This agent moves streams from the tunnel to lanes (`MOVES_OFFERED`); the relay
        // reads it from the tunnel's request.
        request.headers_mut().insert(
            portico_tunnel::lane::MOVES_OFFERED,
            HeaderValue::from_static("1"),
        );
        let (socket, response) = self
            .step(
                "the WebSocket upgrade",
                tokio_tungstenite::client_async_with_config(
                    request,
                    Fair::new(tls),
                    Some(message_limits()),
                ),
            )
            .await?
            .map_err(ws_error)?;
        Ok((socket, response.headers().clone()))
    }

    pub(crate) async fn step<F: std::future::Future>(
        &self,
        step: &'static str,
        future: F,
    ) -> Result<F::Output, ConnectError> {
        tokio::time::timeout(self.step_timeout, future)
            .await
            .map_err(|_| ConnectError::Timeout {
                step,
                after: self.step_timeout,
            })
    }
}

/// What one message from the backend may weigh: the largest tunnel message the relay sends
/// packs frames of at most `MAX_MAX_FRAME`; WebSocket's own default (64 MiB) is far beyond
/// anything honest. And a 32 KiB read buffer instead of the default 128 KiB, which is written
/// over at every read and so stays resident: a small device has better use for the memory.
fn message_limits() -> tungstenite::protocol::WebSocketConfig {
    let largest = portico_tunnel::frame::MAX_TRANSPORT_MESSAGE;
    tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(largest))
        .max_frame_size(Some(largest))
        .read_buffer_size(32 * 1024)
}

/// Unsent bytes a tunnel's socket may hold in the kernel. Beyond this, bytes wait in the
/// tunnel's own per-stream queues, where an interactive stream overtakes a bulk one; in the
/// kernel's send buffer (megabytes, once autotuned) they would all wait in one line.
const NOT_SENT_LOW_WATER: u32 = 128 * 1024;

/// Interactive streams want small writes sent at once (`TCP_NODELAY`) and not queued behind
/// megabytes of bulk data (`TCP_NOTSENT_LOWAT`). Failing to set either only costs latency,
/// so it is not an error.
fn tune_tunnel_socket(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOT_SENT_LOW_WATER);
}
