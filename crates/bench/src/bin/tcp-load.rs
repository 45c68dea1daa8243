//! A TCP load tool for `bench/tunnel`: the server at the far end of a tunnel and the client
//! that measures through it. The same tool runs against a direct connection, Portico's tunnel
//! and other tunnel tools, so the figures differ only by what sits in between.
//!
//! - `tcp-load serve --listen ADDR`: per connection, reads a one-byte mode, then `b'S'` (sink:
//!   read and discard until the client closes, then answer the byte count as 8 bytes) or
//!   `b'E'` (echo every byte back).
//! - `tcp-load bulk --to ADDR --streams N --bytes B`: N connections at once, each sends B bytes
//!   in sink mode and waits for the count; prints the total rate.
//! - `tcp-load open --to ADDR --count N [--pause-ms P]`: N times in a row (P ms apart),
//!   connect, send one echo byte, read it back: the latency of opening a stream over the
//!   tunnel.
//! - `tcp-load rtt --to ADDR --count N [--with-bulk-to ADDR --bulk-bytes B [--bulk-mbit R]]`:
//!   N one-byte echo round trips on one connection, optionally while another connection is
//!   sending in bulk (as fast as it can, or paced at R Mbit/s, the rate of a real uplink):
//!   whether an interactive stream suffers from a bulk one beside it.
//!
//! Output is `key=value` lines for the script to read.

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use portico_bench::quantile;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(about = "TCP load through a tunnel")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sink and echo server.
    Serve {
        #[arg(long)]
        listen: String,
    },
    /// Bulk throughput over concurrent connections.
    Bulk {
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Bytes per connection.
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
    },
    /// Stream-open latency: connect and one echo byte, repeatedly.
    Open {
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Milliseconds between one open's echo and the next open (0: back to back).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Interactive round trips, optionally beside a bulk transfer.
    Rtt {
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 500)]
        count: usize,
        /// Where a concurrent bulk connection sends (usually the same address).
        #[arg(long)]
        with_bulk_to: Option<String>,
        #[arg(long, default_value_t = 1 << 30)]
        bulk_bytes: u64,
        /// Pace the bulk connection at this many Mbit/s instead of sending flat out.
        #[arg(long)]
        bulk_mbit: Option<f64>,
    },
}

/// Every wait on the network is bounded by this.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve { listen } => serve(&listen).await,
        Command::Bulk { to, streams, bytes } => {
            if streams == 0 || bytes == 0 {
                bail!("--streams and --bytes must be at least 1");
            }
            let started = Instant::now();
            let tasks: Vec<_> = (0..streams)
                .map(|_| tokio::spawn(send_bulk(to.clone(), bytes, None)))
                .collect();
            for task in tasks {
                task.await??;
            }
            let seconds = started.elapsed().as_secs_f64();
            let total = bytes as f64 * streams as f64;
            println!("streams={streams}");
            println!("bytes={total}");
            println!("seconds={seconds:.3}");
            println!("mbit_per_s={:.1}", total * 8.0 / seconds / 1e6);
            Ok(())
        }
        Command::Open {
            to,
            count,
            pause_ms,
        } => {
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                if pause_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
                let started = Instant::now();
                let mut stream = connect(&to, b'E').await?;
                echo_once(&mut stream).await?;
                samples.push(micros(started));
            }
            print_latency("open", samples);
            Ok(())
        }
        Command::Rtt {
            to,
            count,
            with_bulk_to,
            bulk_bytes,
            bulk_mbit,
        } => {
            if bulk_mbit.is_some_and(|rate| rate.is_nan() || rate < 0.001) {
                bail!("--bulk-mbit must be at least 0.001");
            }
            let bulk =
                with_bulk_to.map(|address| tokio::spawn(send_bulk(address, bulk_bytes, bulk_mbit)));
            if bulk.is_some() {
                // Let the bulk transfer fill the windows and buffers first.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let mut stream = connect(&to, b'E').await?;
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                let started = Instant::now();
                echo_once(&mut stream).await?;
                samples.push(micros(started));
            }
            if let Some(bulk) = bulk {
                // Round trips measured after the bulk stream ended would not be beside it.
                if bulk.is_finished() {
                    bulk.await??;
                    bail!("the bulk transfer ended before the round trips: raise --bulk-bytes");
                }
                bulk.abort();
            }
            print_latency("rtt", samples);
            Ok(())
        }
    }
}

async fn serve(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("listening={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = answer(stream).await {
                eprintln!("connection: {error:#}");
            }
        });
    }
}

async fn answer(mut stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mode = stream.read_u8().await?;
    let mut buffer = vec![0u8; CHUNK];
    match mode {
        b'S' => {
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            stream.write_u64(total).await?;
            stream.shutdown().await?;
        }
        b'E' => loop {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            stream.write_all(&buffer[..n]).await?;
        },
        other => bail!("unknown mode byte {other}"),
    }
    Ok(())
}

async fn connect(to: &str, mode: u8) -> anyhow::Result<TcpStream> {
    let mut stream = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(to))
        .await
        .context("connecting took too long")?
        .with_context(|| format!("cannot connect to {to}"))?;
    stream.set_nodelay(true)?;
    stream.write_u8(mode).await?;
    Ok(stream)
}

/// Sends `bytes` in sink mode, flat out or, with `mbit`, no faster than that rate (each
/// chunk waits for the moment the bytes before it are due), and checks the far end counted
/// them all.
async fn send_bulk(to: String, bytes: u64, mbit: Option<f64>) -> anyhow::Result<()> {
    let mut stream = connect(&to, b'S').await?;
    let chunk = vec![0x5au8; CHUNK];
    let started = tokio::time::Instant::now();
    let mut left = bytes;
    while left > 0 {
        if let Some(mbit) = mbit {
            let sent_bits = (bytes - left) as f64 * 8.0;
            let due = started + Duration::from_secs_f64(sent_bits / (mbit * 1e6));
            tokio::time::sleep_until(due).await;
        }
        let n = left.min(CHUNK as u64) as usize;
        tokio::time::timeout(STEP_TIMEOUT, stream.write_all(&chunk[..n]))
            .await
            .context("the transfer stalled")??;
        left -= n as u64;
    }
    stream.shutdown().await?;
    let counted = tokio::time::timeout(STEP_TIMEOUT, stream.read_u64())
        .await
        .context("the count did not come back")??;
    if counted != bytes {
        bail!("sent {bytes} bytes, the far end counted {counted}");
    }
    Ok(())
}

async fn echo_once(stream: &mut TcpStream) -> anyhow::Result<()> {
    stream.write_all(b"x").await?;
    let byte = tokio::time::timeout(STEP_TIMEOUT, stream.read_u8())
        .await
        .context("no echo")??;
    if byte != b'x' {
        bail!("the echo came back as {byte}");
    }
    Ok(())
}

fn micros(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}

fn print_latency(name: &str, mut samples: Vec<u32>) {
    samples.sort_unstable();
    let ms = |q| quantile(&samples, q).map_or(0.0, |us| f64::from(us) / 1000.0);
    println!("{name}_count={}", samples.len());
    println!("{name}_p50_ms={:.3}", ms(0.5));
    println!("{name}_p99_ms={:.3}", ms(0.99));
}
