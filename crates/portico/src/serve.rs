//! `portico serve`: wires the store, the in-process services and the gateway together,
//! binds the listeners, and runs until SIGINT or SIGTERM, then drains. SIGHUP reloads the
//! configuration ([`crate::reload`]); the TLS certificate files are watched
//! ([`portico_gateway::cert_reload`]).

use crate::builtin::{
    self, CONSOLE_SERVICE, DEMO_SERVICE, REGISTRY_SERVICE, REMOTE_SERVICES_SERVICE,
};
use crate::config::{Config, TlsSource};
use crate::identity::IdentityAuthenticator;
use crate::registry_sync;
use anyhow::{Context, Result};
use portico_gateway::cert_reload::ReloadingCert;
use portico_gateway::tls::{self, dev_cert_names, ensure_dev_cert, DevCert};
use portico_gateway::{from_tower, Gateway, GatewayConfig, Services};
use portico_identity::{Identity, Role, MANAGEMENT_TENANT};
use portico_relay::live::{ControlHub, ControlOptions, LiveOptions, Relay};
use portico_store::mask_password;
use portico_store::{Origin, Store};

/// The platform operator's account name, made on the first start.
const OPERATOR: &str = "operator";
/// The user devices fetch their credentials with.
const DEVICE_BOOTSTRAP: &str = "devicebootstrap";
/// The in-process service the gateway sends the core identity paths to.
const IDENTITY_SERVICE: &str = "identity";
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The web console: it reads through the in-process APIs already in `services`.
fn console_service(
    services: &Services,
    store: &Store,
    config: &Config,
) -> Option<Arc<dyn portico_gateway::InProcess>> {
    let remote_services = services.get(REMOTE_SERVICES_SERVICE)?.clone();
    let app = portico_console::console_app(portico_console::ConsoleOptions {
        remote_services,
        identity_admin: services.get(builtin::IDENTITY_ADMIN_SERVICE).cloned(),
        store: store.clone(),
        // The allow-list as `portico firewall-rules` prints it by default (port 443).
        allow_list: crate::firewall_rules::allow_list(config, 443),
    });
    Some(from_tower(app))
}

pub async fn run(config: Config) -> Result<()> {
    // Installed first: until then SIGHUP would end the process.
    let mut signals = Signals::install()?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            config.data_dir.display()
        )
    })?;
    let listeners = Listeners::bind(&config).await?;
    let store = Store::open(&config.database)
        .await
        .with_context(|| format!("cannot open the store {}", mask_password(&config.database)))?;

    store
        .replace_origin(Origin::Builtin, &builtin::registrations(config.demo))
        .await
        .context("cannot write Portico's built-in registrations (does the registry file claim one of their names?)")?;
    bootstrap_admin_token(&store).await?;
    let identity = Identity::open(store.clone(), config.identity.clone(), issuer(&config))
        .await
        .context("cannot start the identity service")?;
    bootstrap_operator(&store, &identity).await?;
    bootstrap_device_user(&store, &identity).await?;
    if config.demo {
        if let Some(password) = crate::demo_console::seed(&store, &identity).await? {
            println!(
                "\nThe demo's console administrator \"admin\" of tenant \"demo\" (password shown this once; \
                 `portico admin user passwd --tenant demo --name admin` sets a new one):\n\n    {password}\n"
            );
        }
    }
    let last_file = match &config.registry {
        Some(path) => registry_sync::apply_file(&store, path).await?,
        None => None,
    };

    let mut services = Services::new();
    services.insert(
        REGISTRY_SERVICE.into(),
        from_tower(portico_console::registry_api(store.clone())),
    );
    services.insert(DEMO_SERVICE.into(), from_tower(crate::demo::service()));
    services.insert(
        IDENTITY_SERVICE.into(),
        crate::identity::service(identity.clone()),
    );
    services.insert(
        builtin::IDENTITY_ADMIN_SERVICE.into(),
        crate::identity_admin::service(identity.clone()),
    );
    // The live relay: tunnels (`/mts/`) and control channels (`/ccf/`) of the endpoints.
    let live = LiveOptions::default();
    let node = match config.cluster.as_ref().zip(listeners.link) {
        Some((cluster, link)) => {
            Some(crate::cluster_node::prepare(&store, cluster, &live, link).await?)
        }
        None => None,
    };
    let relay = Arc::new(match &node {
        Some(node) => Relay::clustered(store.clone(), live.clone(), node.cluster.clone()),
        None => Relay::new(store.clone(), live.clone()),
    });
    let hub = ControlHub::new(store.clone(), relay.clone(), ControlOptions::default());
    services.insert(
        crate::relay_socket::RELAY_SERVICE.into(),
        crate::relay_socket::service(identity.clone(), store.clone(), hub.clone()),
    );
    // Clientless browser access: a connection session's device web interface (RS-10).
    services.insert(
        crate::clientless::SERVICE.into(),
        crate::clientless::service(store.clone(), &hub, identity.clone()),
    );
    services.insert(
        REMOTE_SERVICES_SERVICE.into(),
        crate::remote_services::service(
            store.clone(),
            identity.clone(),
            Some(Arc::new(crate::live_events::LiveRelay {
                hub: hub.clone(),
                relay: relay.clone(),
                cluster_notices: node.as_ref().map(|_| store.clone()),
            })),
        ),
    );
    // Device Connectivity: the device REST API and the Bayeux notification endpoints.
    let node_name = config.cluster.as_ref().map(|cluster| cluster.node.clone());
    let realtime = crate::devices::open(
        store.clone(),
        identity.clone(),
        &config.notifications,
        node_name,
    )
    .await?;
    services.insert(
        portico_gateway::DEVICE_SERVICE.into(),
        crate::devices::service(&realtime),
    );
    if let Some(console) = console_service(&services, &store, &config) {
        services.insert(CONSOLE_SERVICE.into(), console);
    }
    let authenticator = Arc::new(IdentityAuthenticator::new(identity.clone()));
    let gateway =
        Gateway::with_authenticator(gateway_config(&config), services, Some(authenticator));
    registry_sync::reload(&store, &gateway).await?;

    let certificate = certificate(&config)?;
    let tls = TlsAcceptor::from(tls::server_config_with(certificate.clone())?);
    let Listeners {
        listen,
        plain,
        admin,
        ..
    } = listeners;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(registry_sync::run(
        store.clone(),
        gateway.clone(),
        config.registry.clone(),
        last_file,
        config.registry_cache_ttl,
        shutdown.clone(),
    ));
    tasks.spawn(certificate.watch(shutdown.clone()));
    if let Some(node) = node {
        node.run(&tasks, &relay, &hub, &live, &shutdown);
    }
    // The operators' listener outlives the drain, so that `/readyz` says "draining" to a
    // load balancer until the process is gone.
    let admin_shutdown = CancellationToken::new();
    let admin = tokio::spawn(portico_gateway::ops::serve(
        gateway.clone(),
        admin,
        admin_shutdown.clone(),
    ));
    {
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { gateway.serve(listen, Some(tls), shutdown).await });
    }
    if let Some(plain) = plain {
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { gateway.serve(plain, None, shutdown).await });
    }
    print_welcome(&config);

    while let Wanted::Reload = signals.next().await {
        crate::reload::on_hangup(&config, &gateway);
    }
    tracing::info!(
        drain_timeout = ?gateway.config().drain_timeout,
        "shutting down: no new connections; requests in flight may finish"
    );
    gateway.start_draining();
    // Upgraded sockets outlive the listeners' drain: tell the endpoints first.
    hub.shut_down();
    relay.shut_down();
    // Held polls are answered now, not cut by the drain; sessions keep their places.
    realtime.shut_down().await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    admin_shutdown.cancel();
    let _ = admin.await;
    store.close().await;
    Ok(())
}

/// The gateway's settings from the configuration; also what SIGHUP applies.
pub fn gateway_config(config: &Config) -> GatewayConfig {
    GatewayConfig {
        connect_timeout: config.connect_timeout,
        response_timeout: config.response_timeout,
        backend_roots: config.backend_roots.clone(),
        max_header_size: config.max_header_size,
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections,
        idle_timeout: config.idle_timeout,
        max_request_size: config.max_request_size,
        max_file_size: config.max_file_size,
        greylist: config.greylist.clone(),
        static_dir: config.static_dir.clone(),
        websocket_ping_interval: config.websocket_ping_interval,
        drain_timeout: config.drain_timeout,
        per_core_runtimes: config.per_core_runtimes,
        ..GatewayConfig::new(config.domains.clone(), config.regions.clone())
    }
}

/// The listener's certificate, from the files that will be watched.
fn certificate(config: &Config) -> Result<Arc<ReloadingCert>> {
    let names = dev_cert_names(&config.domains, &config.regions);
    let files = match &config.tls {
        TlsSource::Development => {
            let files = DevCert::in_dir(&config.data_dir);
            ensure_dev_cert(&files, &names)?;
            files
        }
        // Configured files that do not exist yet get a development certificate, so that
        // a configuration works as written on a first try; one file without the other is
        // a mistake and refused.
        TlsSource::Files { cert, key } if !cert.exists() && !key.exists() => {
            let files = DevCert::at(cert, key);
            ensure_dev_cert(&files, &names)?;
            tracing::warn!(
                cert = %cert.display(),
                ca = %files.ca.display(),
                "the configured certificate did not exist: a development certificate was written there"
            );
            files
        }
        TlsSource::Files { cert, key } => DevCert::at(cert, key),
    };
    Ok(ReloadingCert::load(&files.cert, &files.key)?)
}

/// Every socket `serve` listens on. They are bound before anything else is done, so a
/// start that cannot listen (a port in use) fails before it has changed anything: no first-start
/// admin token or password is made, and shown, by a run that then exits.
struct Listeners {
    listen: TcpListener,
    plain: Option<TcpListener>,
    admin: TcpListener,
    /// The cluster link (`cluster.link_listen`), with `[cluster]` only.
    link: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Listeners> {
        let listen = bind(config.listen, "server.listen").await?;
        let plain = match config.listen_plain {
            Some(addr) => Some(bind(addr, "server.listen_plain").await?),
            None => None,
        };
        let admin = bind(config.admin_listen, "server.admin_listen").await?;
        let link = match &config.cluster {
            Some(cluster) => Some(bind(cluster.link_listen, "cluster.link_listen").await?),
            None => None,
        };
        Ok(Listeners {
            listen,
            plain,
            admin,
            link,
        })
    }
}

async fn bind(addr: SocketAddr, key: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({key}); is another process using it?"))
}

/// Creates the bootstrap admin token on first start and prints it once; only its hash
/// is stored.
async fn bootstrap_admin_token(store: &Store) -> Result<()> {
    if store.admin_token_hash().await?.is_some() {
        return Ok(());
    }
    let token = portico_console::new_admin_token();
    store
        .set_admin_token_hash(&portico_console::hash_admin_token(&token))
        .await?;
    println!(
        "\nThe admin token for the registry API and `portico admin` (shown this once; \
         `portico admin token reset` makes a new one):\n\n    {token}\n"
    );
    Ok(())
}

/// The `iss` of Portico's tokens: the gateway host of the first region, as clients
/// address it over TLS.
pub fn issuer(config: &Config) -> String {
    let port = match config.public_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    format!(
        "https://gateway.{}.{}{port}",
        config.regions[0], config.domains[0]
    )
}

/// The platform operator's account, made on the first start, its one-time password shown
/// once (`portico admin user passwd` sets a new one).
async fn bootstrap_operator(store: &Store, identity: &Identity) -> Result<()> {
    let users = store.users(MANAGEMENT_TENANT).await?;
    if users.iter().any(|u| u.role == Role::Operator.as_str()) {
        return Ok(());
    }
    let password = portico_console::new_admin_token();
    identity
        .add_user(MANAGEMENT_TENANT, OPERATOR, Role::Operator, &password)
        .await
        .context("cannot create the operator account")?;
    println!(
        "\nThe operator account \"{OPERATOR}\" of tenant \"{MANAGEMENT_TENANT}\" (password shown this once; \
         `portico admin user passwd --tenant {MANAGEMENT_TENANT} --name {OPERATOR}` sets a new one):\n\n    {password}\n"
    );
    Ok(())
}

/// The user devices share before they have credentials of their own (DC-1 bootstrap):
/// made on the first start with a random password, shown once. Device images carry it;
/// `portico admin user passwd --tenant management --name devicebootstrap` sets another.
async fn bootstrap_device_user(store: &Store, identity: &Identity) -> Result<()> {
    if store
        .user(MANAGEMENT_TENANT, DEVICE_BOOTSTRAP)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let password = portico_console::new_admin_token();
    identity
        .add_user(
            MANAGEMENT_TENANT,
            DEVICE_BOOTSTRAP,
            Role::DeviceBootstrap,
            &password,
        )
        .await
        .context("cannot create the device bootstrap account")?;
    println!(
        "\nThe device bootstrap account \"{MANAGEMENT_TENANT}/{DEVICE_BOOTSTRAP}\" (password shown this once; \
         `portico admin user passwd --tenant {MANAGEMENT_TENANT} --name {DEVICE_BOOTSTRAP}` sets a new one):\n\n    {password}\n"
    );
    Ok(())
}

fn print_welcome(config: &Config) {
    let region = &config.regions[0];
    let domain = &config.domains[0];
    // Over TLS, the port clients use (a load balancer's, in a cluster).
    let public_tls = SocketAddr::new(config.listen.ip(), config.public_port);
    let port = |addr: SocketAddr, default: u16| {
        if addr.port() == default {
            String::new()
        } else {
            format!(":{}", addr.port())
        }
    };
    match &config.file {
        Some(file) => println!("Portico is running with {}.", file.display()),
        None => println!("Portico is running with its built-in defaults."),
    }
    if config.demo {
        if let Some(plain) = config.listen_plain {
            println!(
                "  demo app:     http://demo-hello.{region}.{domain}{}/",
                port(plain, 80)
            );
        }
        println!(
            "  demo app:     https://demo-hello.{region}.{domain}{}/",
            port(public_tls, 443)
        );
        if let Some(plain) = config.listen_plain {
            println!(
                "  web console:  http://demo-console.{region}.{domain}{}/ (user admin)",
                port(plain, 80)
            );
        }
    }
    println!(
        "  registry API: https://gateway.{region}.{domain}{}/api/registry/v1/openapi.json",
        port(public_tls, 443)
    );
    println!(
        "  operator:     https://management-console.{region}.{domain}{}/registry (user operator)",
        port(public_tls, 443)
    );
    if matches!(config.tls, TlsSource::Development) {
        println!(
            "  development CA (for curl --cacert): {}",
            config.data_dir.join("dev-ca.pem").display()
        );
    }
    println!("  metrics:      http://{}/metrics", config.admin_listen);
}

/// What a signal asks for.
enum Wanted {
    Stop,
    Reload,
}

/// The signals `serve` answers: SIGINT and SIGTERM stop, SIGHUP reloads.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot watch {name}"))
        };
        Ok(Signals {
            interrupt: watch(SignalKind::interrupt(), "SIGINT")?,
            terminate: watch(SignalKind::terminate(), "SIGTERM")?,
            hangup: watch(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Wanted {
        tokio::select! {
            _ = self.interrupt.recv() => Wanted::Stop,
            _ = self.terminate.recv() => Wanted::Stop,
            _ = self.hangup.recv() => Wanted::Reload,
        }
    }
}
