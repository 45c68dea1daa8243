//! The `portico` binary: a thin command line over the crates that do the work.
#![forbid(unsafe_code)]

mod admin;
mod admin_remote;
mod builtin;
mod clientless;
mod cluster_node;
mod config;
mod demo;
mod demo_console;
mod device_accounts;
mod devices;
mod firewall_rules;
mod identity;
mod identity_admin;
mod live_events;
mod registry_sync;
mod relay_socket;
mod reload;
mod remote_services;
mod serve;

use clap::{Parser, Subcommand};
use portico_agent::commands;
use std::path::PathBuf;
use std::process::ExitCode;

/// The name the endpoint commands use for this binary in their messages.
const PROGRAM: &str = "portico";

const EXAMPLES: &str = "\
Examples:
  portico serve                                   # defaults: demo at http://demo-hello.eu1.portico.localhost:8080/
  portico serve --config /etc/portico/portico.toml
  PORTICO_SERVER__ADMIN_LISTEN=127.0.0.1:9191 portico serve
  portico admin tenant list --token $TOKEN
  portico admin webapp add --name assetmanager --provider xyz --backend http://127.0.0.1:9001 --tenant abc --auth none
  portico admin api add --name iot --provider xyz --version 3 --backend http://127.0.0.1:9002 \\
      --route '/assets/**=GET,POST' --tenant abc --auth none
  portico admin token reset --config /etc/portico/portico.toml
  portico endpoint register --config endpoint.toml --code K7QP-2MZX
  portico endpoint run --config endpoint.toml
  portico connect --config endpoint.toml --device press-7 --app ssh-press
  portico connections --config endpoint.toml --end c-1f2e";

/// Portico: a self-hostable Industrial IoT connectivity gateway.
#[derive(Debug, Parser)]
#[command(name = "portico", version, after_help = EXAMPLES)]
struct Cli {
    /// Configuration file [default: $PORTICO_CONFIG, else ./portico.toml if present, else built-in defaults];
    /// for `endpoint`, `connect` and `connections`: the endpoint's configuration (required)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: listeners, registry, in-process services
    Serve,
    /// Manage the Gateway Registry of a running Portico through its API
    Admin(Box<admin::AdminArgs>),
    /// The endpoint agent (Remote Services): register, run, rotate, doctor (--config FILE)
    #[command(subcommand)]
    Endpoint(portico_agent::EndpointCommand),
    /// Open a connection session from this Service Endpoint and wait for its local listeners
    Connect(portico_agent::ConnectArgs),
    /// List this Service Endpoint's user's connection sessions, or end one
    Connections(portico_agent::ConnectionsArgs),
    /// Print the firewall and proxy allow-list for this deployment (hosts, port, timeouts),
    /// from the server's configuration
    FirewallRules {
        /// The port clients connect to (the public one, if the listener sits behind NAT)
        #[arg(long, default_value_t = 443)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli.config;
    // The endpoint commands read the endpoint's configuration, not the server's.
    match cli.command {
        Command::Endpoint(command) => {
            portico_agent::run_command(PROGRAM, commands::endpoint(command, config_path))
        }
        Command::Connect(args) => {
            portico_agent::run_command(PROGRAM, commands::connect(PROGRAM, args, config_path))
        }
        Command::Connections(args) => {
            portico_agent::run_command(PROGRAM, commands::connections(args, config_path))
        }
        Command::Serve => server_command(ServerCommand::Serve, config_path),
        Command::Admin(args) => server_command(ServerCommand::Admin(args), config_path),
        Command::FirewallRules { port } => match config::load(config_path.as_deref()) {
            Ok(config) => {
                print!("{}", firewall_rules::render(&config, port));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portico: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

enum ServerCommand {
    Serve,
    Admin(Box<admin::AdminArgs>),
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("portico: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portico: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn server_command(command: ServerCommand, config_path: Option<PathBuf>) -> ExitCode {
    let config = match config::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portico: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    exit_code(match command {
        ServerCommand::Serve => {
            init_logging(&config);
            runtime.block_on(serve::run(config))
        }
        ServerCommand::Admin(args) => runtime.block_on(admin::run(*args, config)),
    })
}

fn init_logging(config: &config::Config) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG, when set, wins over the configured level.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        config::LogFormat::Json => builder.json().flatten_event(true).init(),
        config::LogFormat::Text => builder.init(),
    }
}
