//! `SIGHUP` (OPS-4): the configuration file Portico started with is read again with the
//! same loader, and the settings the gateway can change while running are applied to new
//! connections and requests: `[limits]`, `[greylist]`, `[proxy]`, `[static]`,
//! `[websocket]`, `server.drain_timeout` and `server.per_core_runtimes`. A file that does
//! not load changes nothing.
//! Keys that shape what was set up at start (listeners, store, domains, the TLS file
//! names, logging, `[identity]`, `[notifications]`, `[cluster]`) keep their running
//! values and are named in a "needs a restart" line. A new `limits.idle_timeout` must
//! still leave room for the running `[notifications]` timing, or nothing is applied.

use crate::config::{self, Config};
use crate::serve::gateway_config;
use portico_gateway::{Gateway, GatewayConfig};

/// Reloads the configuration of `started` into `gateway`.
pub fn on_hangup(started: &Config, gateway: &Gateway) {
    let Some(file) = &started.file else {
        tracing::info!(
            "SIGHUP: Portico runs on its built-in defaults; there is no configuration file to read again"
        );
        return;
    };
    let new = match config::load(Some(file)) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!("SIGHUP: configuration not reloaded, the running settings stay: {e:#}");
            return;
        }
    };
    let restart = needs_restart(started, &new);
    let applied = GatewayConfig {
        domains: started.domains.clone(),
        regions: started.regions.clone(),
        ..gateway_config(&new)
    };
    let reconfigured = config::fits_idle_timeout(&started.notifications, new.idle_timeout)
        .map_err(|e| format!("{e:#} ([notifications] keeps its running values until a restart)"))
        .and_then(|()| gateway.reconfigure(applied));
    if let Err(e) = reconfigured {
        tracing::error!("SIGHUP: configuration not reloaded, the running settings stay: {e}");
        return;
    }
    tracing::info!(
        file = %file.display(),
        "SIGHUP: configuration reloaded; [limits], [greylist], [proxy], [static], [websocket], server.drain_timeout and server.per_core_runtimes apply to new connections and requests"
    );
    if !restart.is_empty() {
        tracing::warn!(
            file = %file.display(),
            "SIGHUP: {} changed and needs a restart; the running value stays until then",
            restart.join(", ")
        );
    }
}

/// The keys whose new value differs from the running one and takes a restart.
pub fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let changes = [
        ("server.listen", running.listen != new.listen),
        ("server.public_port", running.public_port != new.public_port),
        (
            "server.listen_plain",
            running.listen_plain != new.listen_plain,
        ),
        (
            "server.admin_listen",
            running.admin_listen != new.admin_listen,
        ),
        ("server.data_dir", running.data_dir != new.data_dir),
        ("server.database", running.database != new.database),
        ("server.domains", running.domains != new.domains),
        ("server.regions", running.regions != new.regions),
        ("server.registry", running.registry != new.registry),
        (
            "server.registry_cache_ttl",
            running.registry_cache_ttl != new.registry_cache_ttl,
        ),
        ("[tls] cert and key file names", running.tls != new.tls),
        ("log.format", running.log_format != new.log_format),
        ("log.level", running.log_level != new.log_level),
        ("demo.enabled", running.demo != new.demo),
        ("[identity]", running.identity != new.identity),
        (
            "[notifications]",
            running.notifications != new.notifications,
        ),
        ("[cluster]", running.cluster != new.cluster),
    ];
    changes
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        config::parse(text, None, Path::new("/etc/portico"), &[]).unwrap()
    }

    #[test]
    fn only_start_time_keys_need_a_restart() {
        let running = parse("[server]\nlisten = \"127.0.0.1:8443\"\n");
        let limits = parse(
            "[server]\nlisten = \"127.0.0.1:8443\"\ndrain_timeout = \"5s\"\n[limits]\nmax_connections = 7\n[proxy]\nconnect_timeout = \"1s\"\n",
        );
        assert!(needs_restart(&running, &limits).is_empty());
        let moved = parse(
            "[server]\nlisten = \"127.0.0.1:9443\"\ndomains = [\"example.com\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        );
        assert_eq!(
            needs_restart(&running, &moved),
            // The public port follows `listen`'s unless it is set.
            vec![
                "server.listen",
                "server.public_port",
                "server.domains",
                "[tls] cert and key file names"
            ]
        );
        let services = parse(
            "[server]\nlisten = \"127.0.0.1:8443\"\npublic_port = 443\n[notifications]\nconnect_timeout = \"20s\"\n",
        );
        assert_eq!(
            needs_restart(&running, &services),
            vec!["server.public_port", "[notifications]"]
        );
    }
}
