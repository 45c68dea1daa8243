//! Keeps the gateway's routing table in step with the registry (GW-8, GW-11): the
//! registry file is read again when it changes, the store's change notices trigger a
//! rebuild, and the table is rebuilt from the store at the latest after the cache
//! timeout. A bad file or an unreachable store leaves the running table in place.
//!
//! Several nodes on one database (OPS-2) hear each other's registry writes through the
//! `registry` notice and rebuild at once; after notices may have been missed (a resync)
//! they rebuild too. The registry version, looked at with the file, still catches a write
//! made by a process that sends no notices (another SQLite process on the same file).

use portico_gateway::metrics::ReloadResult;
use portico_gateway::Gateway;
use portico_store::{registry_file, Origin, Store, REGISTRY_NOTICE};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the registry file is looked at. Well inside the 2 s within which an edit
/// must route.
const FILE_POLL: Duration = Duration::from_millis(400);

/// How soon a registry file that failed for a reason other than its own content is
/// applied again.
const FILE_RETRY: Duration = Duration::from_secs(5);

/// Reads the registry file into the store (origin `file`). Returns what was read, so
/// that the caller can tell later whether the file changed.
pub async fn apply_file(store: &Store, path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(file = %path.display(), "the registry file does not exist; it will be read when it appears");
            return Ok(None);
        }
        Err(e) => anyhow::bail!("cannot read the registry file {}: {e}", path.display()),
    };
    let registry = registry_file::parse(&String::from_utf8_lossy(&text), path)?;
    store
        .replace_origin(Origin::File, &registry)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    tracing::info!(
        file = %path.display(),
        tenants = registry.tenants.len(),
        webapps = registry.webapps.len(),
        apis = registry.apis.len(),
        "registry file applied"
    );
    Ok(Some(text))
}

/// Rebuilds the gateway's table from the store.
pub async fn reload(store: &Store, gateway: &Gateway) -> anyhow::Result<()> {
    let registry = match store.registry().await {
        Ok(registry) => registry,
        Err(e) => {
            gateway.metrics().registry_reload(ReloadResult::Error);
            anyhow::bail!(
                "cannot read the registry from the store, routing from the cached table: {e}"
            );
        }
    };
    // Entries that cannot be routed are logged by the gateway; the rest route.
    gateway.install(&registry);
    Ok(())
}

/// Runs until `shutdown`.
pub async fn run(
    store: Store,
    gateway: Gateway,
    file: Option<PathBuf>,
    mut last_file: Option<Vec<u8>>,
    cache_ttl: Duration,
    shutdown: CancellationToken,
) {
    let mut changes = store.changes();
    let mut notices = store.notices();
    let mut poll = tokio::time::interval(FILE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh_at = Instant::now() + cache_ttl;
    let mut retry_at: Option<Instant> = None;
    // Changes made through other instances on the same database show in its version.
    let mut version = store.registry_version().await.ok();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                version = store.registry_version().await.ok();
                refresh(&store, &gateway, &mut refresh_at, cache_ttl).await;
            }
            notice = notices.recv() => {
                let missed = match notice {
                    Ok(notice) if notice.topic == REGISTRY_NOTICE => false,
                    Ok(notice) if notice.is_resync() => true,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => true,
                    // Only when the store is gone, as with `changes` above.
                    Err(RecvError::Closed) => return,
                };
                // This node's own writes were rebuilt on `changes` already: only a version
                // it has not seen yet (or notices it may have missed) rebuild again.
                let current = store.registry_version().await.ok();
                if missed || current.is_none() || current != version {
                    version = current;
                    refresh(&store, &gateway, &mut refresh_at, cache_ttl).await;
                }
            }
            _ = poll.tick() => {
                if let Some(path) = &file {
                    let current = std::fs::read(path).ok();
                    let retry_due = retry_at.is_some_and(|at| Instant::now() >= at);
                    if current.is_some() && (current != last_file || retry_due) {
                        last_file = current;
                        retry_at = None;
                        if let Err(e) = apply_file(&store, path).await {
                            gateway.metrics().registry_reload(ReloadResult::Error);
                            // A mistake in the file waits for the next edit; anything else
                            // (the store down, a name the API holds) is tried again.
                            if e.downcast_ref::<registry_file::RegistryFileError>().is_none() {
                                retry_at = Some(Instant::now() + FILE_RETRY);
                            }
                            tracing::error!("registry file not applied, the running registry stays: {e:#}");
                        }
                    }
                }
                let current = store.registry_version().await.ok();
                if current.is_some() && current != version {
                    version = current;
                    refresh(&store, &gateway, &mut refresh_at, cache_ttl).await;
                    continue;
                }
                if Instant::now() >= refresh_at {
                    refresh(&store, &gateway, &mut refresh_at, cache_ttl).await;
                }
            }
        }
    }
}

async fn refresh(store: &Store, gateway: &Gateway, refresh_at: &mut Instant, cache_ttl: Duration) {
    match reload(store, gateway).await {
        Ok(()) => {
            *refresh_at = Instant::now() + cache_ttl;
            tracing::info!("routing table rebuilt from the registry");
        }
        Err(e) => {
            // Try again soon rather than after a whole cache period.
            *refresh_at = Instant::now() + Duration::from_secs(5).min(cache_ttl);
            tracing::error!("{e:#}");
        }
    }
}
