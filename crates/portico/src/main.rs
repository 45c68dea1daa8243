//! The `portico` binary: a thin command line over the crates that do the work.
#![forbid(unsafe_code)]

mod admin;
mod admin_remote;
mod builtin;
mod config;
mod demo;
mod identity;
mod registry_sync;
mod reload;
mod remote_services;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  portico serve                                   # defaults: demo at http://demo-hello.eu1.portico.localhost:8080/
  portico serve --config /etc/portico/portico.toml
  PORTICO_SERVER__ADMIN_LISTEN=127.0.0.1:9191 portico serve
  portico admin tenant list --token $TOKEN
  portico admin webapp add --name assetmanager --provider xyz --backend http://127.0.0.1:9001 --tenant abc --auth none
  portico admin api add --name iot --provider xyz --version 3 --backend http://127.0.0.1:9002 \\
      --route '/assets/**=GET,POST' --tenant abc --auth none
  portico admin token reset --config /etc/portico/portico.toml";

/// Portico: a self-hostable Industrial IoT connectivity gateway.
#[derive(Debug, Parser)]
#[command(name = "portico", version, after_help = EXAMPLES)]
struct Cli {
    /// Configuration file [default: $PORTICO_CONFIG, else ./portico.toml if present, else built-in defaults]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portico: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("portico: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => {
            init_logging(&config);
            runtime.block_on(serve::run(config))
        }
        Command::Admin(args) => runtime.block_on(admin::run(*args, config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portico: {e:#}");
            ExitCode::FAILURE
        }
    }
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
