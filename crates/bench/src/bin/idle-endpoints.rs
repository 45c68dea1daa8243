//! Many idle endpoints at once, for `bench/tunnel`'s memory measurement of the relay: for
//! every agent configuration file in `--configs` (as `portico endpoint run` reads them, each
//! naming its registered credentials), runs the real endpoint agent — token, `/mts/` tunnel,
//! `/ccf/` control channel with its keep-alive — all in this one process, until `--hold`
//! seconds have passed. Prints `started=N` once every agent is running.

use anyhow::{bail, Context as _};
use clap::Parser;
use portico_endpoint::{Agent, EndpointConfig, ProxyEnvironment};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Runs many idle endpoint agents in one process")]
struct Args {
    /// A folder of agent configuration files (`*.toml`).
    #[arg(long)]
    configs: PathBuf,
    /// Seconds to keep the agents running.
    #[arg(long, default_value_t = 30)]
    hold: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&args.configs)
        .with_context(|| format!("cannot read {}", args.configs.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .filter(|path| !path.to_string_lossy().ends_with(".credentials.toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no agent configurations in {}", args.configs.display());
    }
    let environment = ProxyEnvironment::from_process();
    let shutdown = CancellationToken::new();
    let mut agents = Vec::with_capacity(paths.len());
    for path in &paths {
        let config = EndpointConfig::load(path, &environment)
            .with_context(|| format!("{}", path.display()))?;
        let agent = Agent::new(config).with_context(|| format!("{}", path.display()))?;
        agents.push(tokio::spawn(agent.run(shutdown.clone())));
        // Spread the first connections a little, as agents starting at different times do.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("started={}", agents.len());
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    shutdown.cancel();
    for agent in agents {
        let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
    }
    Ok(())
}
