//! The endpoint commands themselves. Each takes the endpoint's configuration file and the
//! name of the program it runs in (`portico` or `portico-agent`), so that the hints it prints
//! name the command the operator actually typed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use portico_endpoint::api::{how_to_reach, ConnectionsApi};
use portico_endpoint::rotate::Maintained;
use portico_endpoint::{Agent, Dialer, EndpointConfig, EndpointRole, ProxyEnvironment};
use tokio_util::sync::CancellationToken;

use crate::output::{connection_line, when};

/// How long `connect` waits for the running agent's listeners to accept.
const LISTENER_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Run the agent: keep the tunnel to the backend up, open listeners, dial permitted targets
    Run,
    /// Trade a one-time registration code for the endpoint's credentials
    Register {
        /// The code an administrator created for this endpoint
        #[arg(long)]
        code: String,
    },
    /// Rotate the endpoint's credentials now: new ones are issued, saved, then confirmed,
    /// which withdraws the old ones (a running agent picks the new file up by itself)
    Rotate,
    /// Check, from this network, everything the tunnel needs on the way to the backend (DNS,
    /// TCP 443, the proxy, TLS and interception, the WebSocket upgrade) and say what to ask
    /// IT for; exits non-zero when something blocks the tunnel
    Doctor {
        /// Also measure how long an idle connection survives (the firewall's idle timeout),
        /// trying idle periods up to this long: minutes (30), or 90s, 15m, 1h
        #[arg(long, value_name = "MINUTES", value_parser = portico_endpoint::doctor::idle::parse_longest)]
        idle: Option<Duration>,
    },
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The device to connect to
    #[arg(long)]
    device: String,
    /// The Protocol Application assigned to the device
    #[arg(long)]
    app: String,
}

#[derive(Debug, Args)]
pub struct ConnectionsArgs {
    /// End the connection session with this id instead of listing
    #[arg(long, value_name = "ID")]
    end: Option<String>,
}

fn load(config: Option<&Path>) -> anyhow::Result<EndpointConfig> {
    let Some(path) = config else {
        bail!("the endpoint commands need --config FILE (the endpoint's configuration)");
    };
    Ok(EndpointConfig::load(
        path,
        &ProxyEnvironment::from_process(),
    )?)
}

pub async fn endpoint(command: EndpointCommand, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(config.as_deref())?;
    match command {
        EndpointCommand::Run => {
            init_logging();
            let agent = Agent::new(config)?;
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.cancel();
                }
            });
            agent.run(shutdown).await;
            Ok(())
        }
        EndpointCommand::Rotate => {
            let rotator = portico_endpoint::rotate::Rotator::from_config(&config)?;
            let client = match rotator.rotate_now().await? {
                Maintained::Rotated { client_id } | Maintained::Confirmed { client_id } => {
                    client_id
                }
                Maintained::Fresh => bail!("the credentials were not rotated"),
            };
            println!(
                "credentials rotated: client {client}, written to {}; the old credentials are withdrawn",
                config.credentials_file.display()
            );
            Ok(())
        }
        EndpointCommand::Doctor { idle } => {
            let options = portico_endpoint::doctor::DoctorOptions { idle };
            let mut printer = portico_endpoint::doctor::report::Printer::default();
            if portico_endpoint::doctor::run(&config, &options, &mut printer).await {
                Ok(())
            } else {
                bail!(
                    "something blocks the tunnel ({} failed checks)",
                    printer.failures
                )
            }
        }
        EndpointCommand::Register { code } => {
            let api = Dialer::from_config(&config)?.towards(config.api.clone());
            let registered =
                portico_endpoint::register::register(&api, &code, &config.credentials_file).await?;
            println!(
                "registered {} endpoint \"{}\" of tenant \"{}\"; credentials written to {}",
                registered.kind,
                registered.endpoint,
                registered.tenant,
                config.credentials_file.display()
            );
            Ok(())
        }
    }
}

pub async fn connect(
    program: &str,
    args: ConnectArgs,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = load(config.as_deref())?;
    if config.role != EndpointRole::Service {
        bail!("`{program} connect` runs on a Service Endpoint (role = \"service\")");
    }
    let api = ConnectionsApi::from_config(&config)?;
    let connection = api.open(&args.device, &args.app).await?;
    let local: Vec<_> = connection
        .listeners
        .iter()
        .filter(|l| l.side == "service")
        .collect();
    for listener in &local {
        let addr = SocketAddr::new(config.listen_address, listener.local_port);
        wait_until_accepting(addr, LISTENER_WAIT)
            .await
            .with_context(|| {
                format!(
                    "session {} is open, but the local listener on {addr} does not accept; is \
                     `{program} endpoint run` running with this configuration?",
                    connection.id
                )
            })?;
    }
    for listener in &local {
        println!(
            "{}",
            how_to_reach(config.listen_address, &connection.template, listener)
        );
    }
    if local.is_empty() {
        println!("the device's endpoint opens the listeners of this application");
    }
    println!(
        "session {} ends {}",
        connection.id,
        when(connection.ends_ms)
    );
    Ok(())
}

pub async fn connections(args: ConnectionsArgs, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(config.as_deref())?;
    let api = ConnectionsApi::from_config(&config)?;
    if let Some(id) = args.end {
        let ended = api.end(&id).await?;
        println!(
            "session {} ended ({})",
            ended.id,
            ended.end_reason.as_deref().unwrap_or("ended")
        );
        return Ok(());
    }
    let list = api.list().await?;
    if list.is_empty() {
        println!("no open connection sessions");
    }
    for c in &list {
        println!("{}", connection_line(c));
    }
    Ok(())
}

async fn wait_until_accepting(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    // Bounded: one try every 200 ms until the deadline.
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("nothing accepted within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
