//! The gateway's listeners, served by one single-threaded runtime per core, each accepting
//! on its own copy of every listening socket and serving the connections it accepted from
//! start to end on its thread.
//!
//! A proxied request or WebSocket message then never crosses threads: no worker wakes
//! another to share work, which on a busy machine is a good part of a small request's cost
//! (`docs/benchmarks.md`, measured with one worker: a fifth less CPU per request). The
//! price is the one nginx pays: a connection stays on the thread that accepted it, and a
//! long piece of work on it delays its neighbours. Everything else `serve` runs (the
//! store, the registry sync, the relay's cluster links, the admin listener) stays on the
//! main runtime; work a request starts (a WebSocket relay, a tunnel) runs on its core.

use anyhow::{Context, Result};
use portico_gateway::Gateway;
use std::thread::JoinHandle;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The cores' threads; their runtimes run until [`Cores::stop`].
pub struct Cores {
    threads: Vec<JoinHandle<()>>,
    finished: CancellationToken,
}

/// Serves `listeners` (each with its TLS acceptor, or none for plain HTTP) on one runtime
/// per core until `shutdown`, then drains as [`Gateway::serve`] does. Each core's serving
/// counts in `tasks` until its drain is over.
pub fn serve(
    gateway: &Gateway,
    listeners: Vec<(TcpListener, Option<TlsAcceptor>)>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Cores> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let sockets = listeners
        .into_iter()
        .map(|(listener, tls)| Ok((listener.into_std()?, tls)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot take over the listening sockets")?;
    let finished = CancellationToken::new();
    let mut threads = Vec::with_capacity(cores);
    for core in 0..cores {
        let mine = sockets
            .iter()
            .map(|(socket, tls)| Ok((socket.try_clone()?, tls.clone())))
            .collect::<std::io::Result<Vec<_>>>()
            .context("cannot share a listening socket between cores")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a runtime for the gateway")?;
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        let finished = finished.clone();
        let served = tasks.track_future(async move {
            let serving = mine.into_iter().map(|(socket, tls)| {
                let gateway = gateway.clone();
                let shutdown = shutdown.clone();
                async move {
                    match TcpListener::from_std(socket) {
                        Ok(listener) => gateway.serve(listener, tls, shutdown).await,
                        Err(e) => tracing::error!(error = %e, "a core cannot listen"),
                    }
                }
            });
            futures_util::future::join_all(serving).await;
        });
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{core}"))
            .spawn(move || {
                runtime.block_on(async move {
                    served.await;
                    // What the core's connections started (relays, tunnels) runs on its
                    // runtime: it keeps running until `serve` is done with everything.
                    finished.cancelled().await;
                });
            })
            .context("cannot start a gateway thread")?;
        threads.push(thread);
    }
    Ok(Cores { threads, finished })
}

impl Cores {
    /// Ends the cores' runtimes, and with them whatever still runs there.
    pub async fn stop(self) {
        self.finished.cancel();
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}
