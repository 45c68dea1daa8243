//! `portico-agent`: the endpoint agent alone, for devices and service networks. The same
//! commands as `portico endpoint`, `portico connect` and `portico connections`, in a binary
//! that carries none of the server.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use portico_agent::{commands, run_command, ConnectArgs, ConnectionsArgs, EndpointCommand};
use std::path::PathBuf;
use std::process::ExitCode;

const PROGRAM: &str = "portico-agent";

const EXAMPLES: &str = "\
Examples:
  portico-agent endpoint register --config /etc/portico/endpoint.toml --code K7QP-2MZX
  portico-agent endpoint run --config /etc/portico/endpoint.toml
  portico-agent endpoint doctor --config /etc/portico/endpoint.toml
  portico-agent connect --config endpoint.toml --device press-7 --app ssh-press
  portico-agent connections --config endpoint.toml --end c-1f2e";

/// Portico's endpoint agent: the outbound tunnel of a Device or Service Endpoint.
#[derive(Debug, Parser)]
#[command(name = "portico-agent", version, after_help = EXAMPLES)]
struct Cli {
    /// The endpoint's configuration file (required)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The endpoint agent (Remote Services): run, register, rotate, doctor
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Open a connection session from this Service Endpoint and wait for its local listeners
    Connect(ConnectArgs),
    /// List this Service Endpoint's user's connection sessions, or end one
    Connections(ConnectionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Endpoint(command) => run_command(PROGRAM, commands::endpoint(command, cli.config)),
        Command::Connect(args) => {
            run_command(PROGRAM, commands::connect(PROGRAM, args, cli.config))
        }
        Command::Connections(args) => run_command(PROGRAM, commands::connections(args, cli.config)),
    }
}
