//! A load generator of long-polling Bayeux clients for `bench/realtime`: how many devices
//! waiting for operations one Portico node holds, and how long an operation takes from
//! its creation through the REST API to its receipt by the device.
//!
//! 1. setup: one managed object (`c8y_IsDevice`) per client, `--setup-parallelism` at once,
//!    then `--settle` seconds with no clients (the script samples the server's memory);
//! 2. `--clients` clients on `/notification/operations`, each on its own keep-alive HTTP/1.1
//!    connection (N clients = N sockets, spread over `--source-addresses` source addresses
//!    127.0.0.x): handshake with the credentials in `ext`, subscribe to `/<its device id>`,
//!    then connect after connect, handshaking again on `402::` advice;
//! 3. once every client is ready (or `--connect-timeout` has passed), `--idle` seconds of
//!    polling with nothing published (the script samples the server's memory then);
//! 4. operations created at `--rate` per second for `--duration` seconds, each for a random
//!    ready client's device; each carries a unique id in `c8y_Command.text`;
//! 5. `--drain` seconds more for the missing ones; then the tally.
//!
//! Latency = the receipt (the poll's answer read in full) − the moment just before the
//! operation's POST was sent, both on this process's monotonic clock.
//!
//! Everything is plain HTTP/1.1 to the loopback listener with a `Host` header naming the
//! device host: no TLS on the measured path, so the figures are Portico's Bayeux, REST and
//! store work, not TLS handshakes or encryption.
//!
//! Prints `key=value` lines for the script; `setup_done` comes before the settle pause and
//! `connected=N` as soon as the clients are ready, before the idle period.

#[path = "realtime-load/args.rs"]
mod args;
#[path = "realtime-load/client.rs"]
mod client;
#[path = "realtime-load/conn.rs"]
mod conn;
#[path = "realtime-load/creator.rs"]
mod creator;
#[cfg(test)]
#[path = "realtime-load/fake.rs"]
mod fake;
#[path = "realtime-load/protocol.rs"]
mod protocol;
#[path = "realtime-load/report.rs"]
mod report;
#[path = "realtime-load/setup.rs"]
mod setup;

use anyhow::bail;
use args::Args;
use clap::Parser as _;
use client::{Client, Shared};
use conn::{Conn, Target};
use rand::Rng as _;
use report::Tally;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// How often progress is reported while clients get ready.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How long stopped clients get to finish before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        bail!(e);
    }
    let summary = run(&args).await?;
    let tally = &summary.tally;
    println!("created={}", tally.created);
    println!("failed_posts={}", tally.failed);
    println!("create_seconds={:.1}", summary.create_seconds);
    println!(
        "rate_achieved={:.1}",
        tally.created as f64 / summary.create_seconds.max(1e-9)
    );
    println!("received={}", tally.received);
    println!("lost={}", tally.lost);
    println!("duplicates={}", tally.duplicates);
    println!("unexpected={}", tally.unexpected);
    println!("foreign={}", summary.foreign);
    println!("p50_ms={:.1}", tally.latency_ms(0.5));
    println!("p90_ms={:.1}", tally.latency_ms(0.9));
    println!("p99_ms={:.1}", tally.latency_ms(0.99));
    println!("max_ms={:.1}", tally.max_ms());
    println!("rehandshakes={}", summary.rehandshakes);
    match summary.reconnects {
        Some(reconnects) => println!("reconnects={reconnects}"),
        None => println!("reconnects=unknown"),
    }
    println!("errors={}", summary.errors);
    Ok(())
}

/// What a run found, beyond the progress lines it prints as it goes.
struct Summary {
    tally: Tally,
    create_seconds: f64,
    foreign: u64,
    rehandshakes: u64,
    /// Connections the clients had to open again; `None` when they did not stop in time
    /// to count them.
    reconnects: Option<u64>,
    errors: u64,
}

async fn run(args: &Args) -> anyhow::Result<Summary> {
    let target = Target {
        server: args.server,
        host: args.host.clone(),
    };
    println!("clients={}", args.clients);

    let setup_started = Instant::now();
    let devices = setup::create_devices(args, &target).await?;
    println!("devices_created={}", devices.len());
    println!("setup_seconds={:.1}", setup_started.elapsed().as_secs_f64());
    println!("setup_done");
    tokio::time::sleep(Duration::from_secs(args.settle)).await;

    let (receipts, mut received) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        started: Instant::now(),
        nonce: format!("{:016x}", rand::thread_rng().gen::<u64>()),
        receipts,
        stop: CancellationToken::new(),
        ready: AtomicUsize::new(0),
        ready_clients: (0..args.clients).map(|_| AtomicBool::new(false)).collect(),
        failed: AtomicUsize::new(0),
        rehandshakes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        request_timeout: Duration::from_secs(args.request_timeout),
        poll_timeout: Duration::from_secs(args.poll_timeout),
    });

    let connect_started = Instant::now();
    let clients = start_clients(args, &target, &devices, &shared);
    let ready = wait_until_ready(args, &shared).await;
    println!("connected={ready}");
    println!("failed_clients={}", shared.failed.load(Ordering::Relaxed));
    println!(
        "connect_seconds={:.1}",
        connect_started.elapsed().as_secs_f64()
    );
    if ready == 0 {
        shared.stop.cancel();
        bail!("no client got subscribed");
    }

    tokio::time::sleep(Duration::from_secs(args.idle)).await;

    let targets: Arc<Vec<String>> = Arc::new(
        devices
            .iter()
            .zip(&shared.ready_clients)
            .filter(|(_, ready)| ready.load(Ordering::Relaxed))
            .map(|(device, _)| device.clone())
            .collect(),
    );
    let plan = creator::Plan {
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        connections: args.creator_connections,
        request_timeout: Duration::from_secs(args.request_timeout),
    };
    println!("operations_planned={}", plan.count());
    let create_started = Instant::now();
    let creation = {
        let (target, admin, nonce, started) = (
            target.clone(),
            args.admin.clone(),
            shared.nonce.clone(),
            shared.started,
        );
        tokio::spawn(async move {
            creator::create_operations(&plan, &target, &admin, targets, &nonce, started).await
        })
    };
    let mut all = Vec::new();
    tokio::pin!(creation);
    let sent = loop {
        tokio::select! {
            Some(receipt) = received.recv() => all.push(receipt),
            sent = &mut creation => break sent?,
        }
    };
    let create_seconds = create_started.elapsed().as_secs_f64();

    // The drain: wait for operations created but not received yet, at most `--drain`.
    let created: HashSet<usize> = sent
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, report::Sent::Created { .. }))
        .map(|(seq, _)| seq)
        .collect();
    let mut seen: HashSet<usize> = all
        .iter()
        .map(|&(seq, _)| seq)
        .filter(|seq| created.contains(seq))
        .collect();
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(args.drain);
    while seen.len() < created.len() {
        tokio::select! {
            Some(receipt) = received.recv() => {
                if created.contains(&receipt.0) {
                    seen.insert(receipt.0);
                }
                all.push(receipt);
            }
            _ = tokio::time::sleep_until(drain_until) => break,
        }
    }
    // Whatever has arrived meanwhile counts too (duplicates among it).
    while let Ok(receipt) = received.try_recv() {
        all.push(receipt);
    }

    shared.stop.cancel();
    let reconnects = match tokio::time::timeout(STOP_GRACE, clients).await {
        Ok(Ok(reopened)) => Some(reopened),
        _ => None,
    };
    Ok(Summary {
        tally: Tally::new(&sent, &all),
        create_seconds,
        foreign: shared.foreign.load(Ordering::Relaxed),
        rehandshakes: shared.rehandshakes.load(Ordering::Relaxed),
        reconnects,
        errors: shared.errors.load(Ordering::Relaxed),
    })
}

/// Starts one client per device, at most `--connect-parallelism` getting ready at once;
/// the task ends when every client has stopped, with the number of connections they had to
/// open again.
fn start_clients(
    args: &Args,
    target: &Target,
    devices: &[String],
    shared: &Arc<Shared>,
) -> tokio::task::JoinHandle<u64> {
    let gate = Arc::new(Semaphore::new(args.connect_parallelism));
    let clients: Vec<Client> = devices
        .iter()
        .enumerate()
        .map(|(index, device)| {
            Client::new(
                index,
                device.clone(),
                args.credentials_of(index).clone(),
                Conn::new(target.clone(), args.source_of(index)),
                shared.clone(),
            )
        })
        .collect();
    tokio::spawn(async move {
        let mut running = Vec::with_capacity(clients.len());
        for client in clients {
            let Ok(permit) = gate.clone().acquire_owned().await else {
                break;
            };
            running.push(tokio::spawn(client.run(permit)));
        }
        let mut reopened = 0;
        for client in running {
            reopened += client.await.unwrap_or(0);
        }
        reopened
    })
}

/// Waits until every client is ready or has given up, or `--connect-timeout` has passed;
/// how many are ready.
async fn wait_until_ready(args: &Args, shared: &Shared) -> usize {
    let deadline = Instant::now() + Duration::from_secs(args.connect_timeout);
    let mut last_report = Instant::now();
    loop {
        let ready = shared.ready.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        if ready + failed >= args.clients || Instant::now() >= deadline {
            return ready;
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            eprintln!("realtime-load: {ready} clients ready, {failed} gave up");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
