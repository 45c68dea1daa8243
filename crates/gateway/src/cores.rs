//! Client connections served on one single-threaded runtime per core.
//!
//! On the shared multi-threaded runtime, a request's wake-ups may land on any worker: the
//! client's socket is ready on one, the backend's on another, and the workers spend a
//! share of every request stealing work from each other and waking each other up. A
//! connection that lives on a runtime of one thread keeps its request, its backend
//! exchange and its WebSocket relay on that thread, as nginx keeps a connection in one
//! worker process. Measured with `bench/proxy` (docs/benchmarks.md): WebSocket round trips
//! about a tenth faster, small responses faster within this machine's spread.
//!
//! What is given up is work stealing: a core busy with one connection's bytes does not
//! hand its other connections to an idle core. Each new connection goes to the core with
//! the fewest open, and streams that turn bulk move to the bulk runtime of
//! [`portico_fair::bulk`] as before, so that one bulk transfer does not hold a core's
//! interactive streams. `[server] per_core_runtimes = false` serves every connection on
//! the shared runtime instead.
//!
//! The core runtimes are the process's, made at the first connection that needs them and
//! kept for its life; every gateway of the process shares them.
//!
//! What a request opens for later ones stays on the core that opened it and serves the
//! others from there: HTTPS backend connections in the pooled client, a relay's links to
//! other nodes. Plain-HTTP backend connections are kept per core instead
//! ([`crate::backend_pool`]), so a backend may see up to one idle set per core.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tokio::runtime::Handle;

thread_local! {
    /// On a core runtime's thread, that core's index.
    static CORE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the core runtime whose thread this is, if it is one.
#[inline]
pub fn current() -> Option<usize> {
    CORE.with(Cell::get)
}

/// The number of core runtimes a process has (made or not): one per core available when
/// first asked, fixed from then on (the cores available may change while running).
pub fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

struct Core {
    handle: Handle,
    /// Connections served on this core now.
    open: AtomicUsize,
}

/// A connection counted on its core until this is dropped.
pub struct OnCore(&'static Core);

impl Drop for OnCore {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The core for a new connection, the one with the fewest open, with its count raised
/// until the returned guard is dropped. `None` when the core runtimes could not be made
/// (the system refused a thread), and the connection stays on the shared runtime.
pub fn pick() -> Option<(Handle, OnCore)> {
    let core = cores()?
        .iter()
        .min_by_key(|core| core.open.load(Ordering::Relaxed))?;
    core.open.fetch_add(1, Ordering::Relaxed);
    Some((core.handle.clone(), OnCore(core)))
}

fn cores() -> Option<&'static [Core]> {
    static CORES: OnceLock<Option<Vec<Core>>> = OnceLock::new();
    CORES
        .get_or_init(|| match (0..count()).map(start).collect() {
            Ok(cores) => Some(cores),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the per-core runtimes; serving connections on the shared runtime");
                None
            }
        })
        .as_deref()
}

/// Starts core `index`: its runtime, run by a thread of its own for the rest of the process.
fn start(index: usize) -> std::io::Result<Core> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("portico-core-{index}"))
        .spawn(move || {
            CORE.with(|core| core.set(Some(index)));
            runtime.block_on(std::future::pending::<()>());
        })?;
    Ok(Core {
        handle,
        open: AtomicUsize::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test of this crate's own tests that takes cores: the counts start at zero.
    #[tokio::test]
    async fn connections_spread_over_the_cores_and_run_on_their_threads() {
        let n = count();
        let mut held = Vec::new();
        for _ in 0..n * 2 {
            let (handle, on_core) = pick().expect("core runtimes");
            let ran_on = handle.spawn(async { current() }).await.unwrap();
            let core = ran_on.expect("a core's task runs on a core thread");
            assert!(core < n, "core {core} of {n}");
            held.push(on_core);
        }
        let open = |core: &Core| core.open.load(Ordering::Relaxed);
        let cores = cores().unwrap();
        assert!(
            cores.iter().all(|core| open(core) == 2),
            "two connections on each core"
        );
        drop(held);
        assert!(
            cores.iter().all(|core| open(core) == 0),
            "released with their guards"
        );
        assert_eq!(current(), None, "a test's own thread is no core");
    }
}
