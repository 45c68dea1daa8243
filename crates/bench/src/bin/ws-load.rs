//! A WebSocket round-trip load client for `bench/proxy`.
//!
//! Round-trip mode (default): opens `--connections` WebSockets, then on each one, until
//! `--duration` has passed, sends a binary message, waits for its echo, checks it, and
//! records the round-trip time. Prints `key=value` lines: round-trips, seconds, rate,
//! p50/p99 latency in milliseconds, errors.
//!
//! Hold mode (`--hold SECONDS`): opens the connections, makes one round-trip on each, prints
//! `open=N` and holds them open for that long (for memory measurements), then closes them.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use portico_bench::quantile;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Parser, Clone)]
#[command(about = "WebSocket round-trip load client")]
struct Args {
    /// ws:// URL to connect to.
    #[arg(long)]
    url: String,
    /// Host header to send instead of the URL's authority.
    #[arg(long)]
    host: Option<String>,
    /// WebSockets to open.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of round-trips (round-trip mode).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Hold mode: keep the connections open this many seconds instead of measuring.
    #[arg(long)]
    hold: Option<u64>,
    /// Connection attempts in flight at once while opening.
    #[arg(long, default_value_t = 64)]
    connect_parallelism: usize,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every step that waits on the network is bounded by this.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.size == 0 || args.connect_parallelism == 0 {
        bail!("--connections, --size and --connect-parallelism must be at least 1");
    }
    let sockets = open_all(&args).await?;
    let payload = Bytes::from((0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    match args.hold {
        Some(seconds) => hold(sockets, payload, Duration::from_secs(seconds)).await,
        None => measure(sockets, payload, Duration::from_secs(args.duration)).await,
    }
}

async fn open_all(args: &Args) -> anyhow::Result<Vec<Ws>> {
    let gate = Arc::new(Semaphore::new(args.connect_parallelism));
    let mut opening = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let gate = gate.clone();
        let args = args.clone();
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            tokio::time::timeout(STEP_TIMEOUT, open(&args))
                .await
                .context("opening a WebSocket timed out")?
        }));
    }
    let mut sockets = Vec::with_capacity(args.connections);
    for task in opening {
        sockets.push(task.await??);
    }
    Ok(sockets)
}

async fn open(args: &Args) -> anyhow::Result<Ws> {
    let mut request = args.url.as_str().into_client_request()?;
    if let Some(host) = &args.host {
        request
            .headers_mut()
            .insert(http::header::HOST, host.parse()?);
    }
    let uri = request.uri();
    let address = format!(
        "{}:{}",
        uri.host().context("the URL has no host")?,
        uri.port_u16().unwrap_or(80)
    );
    let stream = TcpStream::connect(&address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (ws, response) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .context("the WebSocket handshake failed")?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        bail!("the handshake was answered {}", response.status());
    }
    Ok(ws)
}

/// One message out and its echo back, checked; the time it took.
async fn round_trip(ws: &mut Ws, payload: &Bytes) -> anyhow::Result<Duration> {
    let started = Instant::now();
    ws.send(Message::Binary(payload.clone())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(echo))) if echo == *payload => return Ok(started.elapsed()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => bail!("unexpected answer: {other:?}"),
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the connection closed"),
        }
    }
}

async fn measure(sockets: Vec<Ws>, payload: Bytes, duration: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = Vec::with_capacity(sockets.len());
    for mut ws in sockets {
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            // Microseconds per round-trip; at most one sample per round-trip made before
            // the deadline.
            let mut samples: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(STEP_TIMEOUT, round_trip(&mut ws, &payload)).await {
                    Ok(Ok(took)) => {
                        samples.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                    }
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(STEP_TIMEOUT, ws.close(None)).await;
            (samples, errors)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (s, e) = task.await?;
        samples.extend(s);
        errors += e;
    }
    let seconds = started
        .elapsed()
        .as_secs_f64()
        .min(duration.as_secs_f64())
        .max(1e-9);
    samples.sort_unstable();
    let ms = |q| quantile(&samples, q).map_or(f64::NAN, |us| f64::from(us) / 1000.0);
    println!("roundtrips={}", samples.len());
    println!("seconds={seconds:.3}");
    println!("rate={:.1}", samples.len() as f64 / seconds);
    println!("p50_ms={:.3}", ms(0.5));
    println!("p99_ms={:.3}", ms(0.99));
    println!("errors={errors}");
    Ok(())
}

async fn hold(sockets: Vec<Ws>, payload: Bytes, duration: Duration) -> anyhow::Result<()> {
    let mut sockets = sockets;
    for ws in &mut sockets {
        tokio::time::timeout(STEP_TIMEOUT, round_trip(ws, &payload))
            .await
            .context("a round-trip timed out")??;
    }
    println!("open={}", sockets.len());
    tokio::time::sleep(duration).await;
    for ws in &mut sockets {
        let _ = tokio::time::timeout(STEP_TIMEOUT, ws.close(None)).await;
    }
    Ok(())
}
