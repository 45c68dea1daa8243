//! The operator side: operations created through the REST API at a steady rate, each for a
//! device picked at random, each timestamped just before its POST is sent.

use crate::args::Credentials;
use crate::conn::{Conn, Target};
use crate::protocol;
use crate::report::{operation_text, Sent};
use bytes::Bytes;
use rand::Rng as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct Plan {
    pub rate: f64,
    pub duration: Duration,
    pub connections: usize,
    pub request_timeout: Duration,
}

impl Plan {
    /// How many operations the plan creates: rate × duration, at least one.
    pub fn count(&self) -> usize {
        ((self.rate * self.duration.as_secs_f64()).round() as usize).max(1)
    }
}

/// Creates the planned operations; what became of each, by number. `started` is the clock
/// the clients timestamp receipts with.
pub async fn create_operations(
    plan: &Plan,
    target: &Target,
    admin: &Credentials,
    devices: Arc<Vec<String>>,
    nonce: &str,
    started: Instant,
) -> Vec<Sent> {
    let count = plan.count();
    // A pool of keep-alive connections: an operation waits for a free one rather than
    // opening a connection of its own (which would be part of its latency).
    let (give_back, mut pool) = mpsc::channel(plan.connections);
    for _ in 0..plan.connections {
        let conn = Conn::new(target.clone(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let _ = give_back.try_send(conn);
    }
    let authorization = Arc::new(admin.basic());
    let (done, mut outcomes) = mpsc::unbounded_channel();
    let begin = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    for seq in 0..count {
        tokio::time::sleep_until(begin + interval.mul_f64(seq as f64)).await;
        let Some(mut conn) = pool.recv().await else {
            break;
        };
        let device = devices[rand::thread_rng().gen_range(0..devices.len())].clone();
        let body =
            Bytes::from(protocol::operation(&device, &operation_text(nonce, seq)).to_string());
        let (authorization, give_back, done) =
            (authorization.clone(), give_back.clone(), done.clone());
        let timeout = plan.request_timeout;
        tokio::spawn(async move {
            let at_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let answer = conn
                .post_json(protocol::OPERATIONS, Some(&authorization), body, timeout)
                .await;
            let sent = match answer {
                Ok((status, _)) if status == http::StatusCode::CREATED => Sent::Created { at_us },
                Ok((status, body)) => {
                    eprintln!(
                        "realtime-load: creating an operation was answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    Sent::Failed
                }
                Err(e) => {
                    eprintln!("realtime-load: creating an operation failed: {e:#}");
                    Sent::Failed
                }
            };
            let _ = done.send((seq, sent));
            let _ = give_back.send(conn).await;
        });
    }
    drop(done);
    let mut sent = vec![Sent::Failed; count];
    while let Some((seq, outcome)) = outcomes.recv().await {
        sent[seq] = outcome;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::Plan;
    use std::time::Duration;

    #[test]
    fn the_plan_counts_rate_times_duration() {
        let plan = |rate, secs| Plan {
            rate,
            duration: Duration::from_secs(secs),
            connections: 1,
            request_timeout: Duration::from_secs(1),
        };
        assert_eq!(plan(50.0, 30).count(), 1500);
        assert_eq!(plan(0.5, 5).count(), 3);
        assert_eq!(plan(0.01, 1).count(), 1);
    }
}
