//! The endpoint agent's commands — `endpoint run|register|rotate|doctor`, `connect` and
//! `connections` — shared by two binaries: `portico` (next to the server's commands) and
//! `portico-agent`, the slim build for devices and service networks that links no server
//! crate. The commands read the endpoint's configuration file (`--config`), not the server's.
#![forbid(unsafe_code)]

pub mod commands;
pub mod output;

pub use commands::{ConnectArgs, ConnectionsArgs, EndpointCommand};

use std::future::Future;
use std::process::ExitCode;

/// Runs one endpoint command on a fresh runtime and turns its outcome into an exit code;
/// a failure is printed as `{program}: error: cause` on standard error.
pub fn run_command(program: &str, command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {}", output::describe(&e));
            ExitCode::FAILURE
        }
    }
}
