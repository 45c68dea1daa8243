//! Tools the benchmarks run: for `bench/proxy`, `ws-echo`, a WebSocket echo backend,
//! `ws-load`, a client that measures WebSocket round-trips through a proxy, and
//! `proxy-floor`, a minimal reverse proxy on Portico's HTTP stack; for
//! `bench/tunnel`, `tcp-load`, a sink/echo server and the client measuring bulk throughput,
//! stream opens and interactive round trips through a tunnel, and `idle-endpoints`, which
//! runs many real endpoint agents in one process to measure the relay's memory; for
//! `bench/realtime`, `realtime-load`, long-polling Bayeux clients and the delivery latency of
//! operations. Not part of the `portico` binary.
#![forbid(unsafe_code)]

use tokio::net::{TcpListener, TcpStream};

/// The next connection on a server tool's `listener`. A failed accept (out of file
/// descriptors, most likely) is reported under the tool's name and tried again after a
/// pause, instead of spinning.
pub async fn accept(listener: &TcpListener, tool: &str) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(e) => {
                eprintln!("{tool}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted samples; `None` when there are none.
pub fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&samples, 0.99), Some(99));
        assert_eq!(quantile(&samples, 0.5), Some(50));
        assert_eq!(quantile(&samples, 1.0), Some(100));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.99), None);
    }
}
