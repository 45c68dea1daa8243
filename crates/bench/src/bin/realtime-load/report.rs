//! Matching receipts to created operations: counts, losses, duplicates and latencies.

use portico_bench::quantile;

/// The unique text an operation carries: the run's nonce and the operation's number, so
/// that a receipt from an earlier run on the same server is never taken for one of this.
pub fn operation_text(nonce: &str, seq: usize) -> String {
    format!("{nonce}-{seq}")
}

/// The operation number in `text`, if it is one of this run's.
pub fn operation_seq(nonce: &str, text: &str) -> Option<usize> {
    text.strip_prefix(nonce)?.strip_prefix('-')?.parse().ok()
}

/// One operation as the creator saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Created (`201`); microseconds since the run's start, taken just before the POST.
    Created { at_us: u64 },
    /// The POST failed or was refused: not expected anywhere.
    Failed,
}

#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub created: usize,
    pub failed: usize,
    /// Created operations received at least once.
    pub received: usize,
    /// Created operations never received before the drain ended.
    pub lost: usize,
    /// Receipts beyond the first of the same operation.
    pub duplicates: usize,
    /// Receipts of operations that were not created (a failed POST, or text of no
    /// operation of this run).
    pub unexpected: usize,
    /// Latencies of first receipts in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Tally {
    /// `receipts`: (operation number, microseconds since the run's start) per receipt, in
    /// any order.
    pub fn new(sent: &[Sent], receipts: &[(usize, u64)]) -> Tally {
        let mut first: Vec<Option<u64>> = vec![None; sent.len()];
        let mut tally = Tally::default();
        for &(seq, at_us) in receipts {
            match (sent.get(seq), first.get_mut(seq)) {
                (Some(Sent::Created { .. }), Some(slot)) => match slot {
                    Some(earlier) => {
                        tally.duplicates += 1;
                        *earlier = (*earlier).min(at_us);
                    }
                    None => *slot = Some(at_us),
                },
                _ => tally.unexpected += 1,
            }
        }
        for (sent, received) in sent.iter().zip(&first) {
            match (sent, received) {
                (Sent::Failed, _) => tally.failed += 1,
                (Sent::Created { at_us }, Some(received)) => {
                    tally.created += 1;
                    tally.received += 1;
                    let latency = received.saturating_sub(*at_us);
                    tally
                        .latencies_us
                        .push(u32::try_from(latency).unwrap_or(u32::MAX));
                }
                (Sent::Created { .. }, None) => {
                    tally.created += 1;
                    tally.lost += 1;
                }
            }
        }
        tally.latencies_us.sort_unstable();
        tally
    }

    /// The latency at quantile `q` in milliseconds; NaN when nothing was received.
    pub fn latency_ms(&self, q: f64) -> f64 {
        quantile(&self.latencies_us, q).map_or(f64::NAN, |us| f64::from(us) / 1000.0)
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_other_runs_are_not_ours() {
        let text = operation_text("r1a2", 17);
        assert_eq!(operation_seq("r1a2", &text), Some(17));
        assert_eq!(operation_seq("other", &text), None);
        assert_eq!(operation_seq("r1a2", "r1a2-"), None);
        assert_eq!(operation_seq("r1a2", "r1a2x-3"), None);
        assert_eq!(operation_seq("r1a2", "restart"), None);
    }

    #[test]
    fn receipts_are_matched_to_creations() {
        let sent = [
            Sent::Created { at_us: 1_000 },
            Sent::Created { at_us: 2_000 },
            Sent::Failed,
            Sent::Created { at_us: 3_000 },
            Sent::Created { at_us: 4_000 },
        ];
        let receipts = [
            (1, 9_000), // 7 ms
            (0, 3_000), // 2 ms
            (1, 8_000), // a duplicate, earlier: 6 ms counts
            (2, 5_000), // of a failed POST
            (9, 5_000), // of nothing
            (4, 4_500), // 0.5 ms
        ];
        let t = Tally::new(&sent, &receipts);
        assert_eq!(t.created, 4);
        assert_eq!(t.failed, 1);
        assert_eq!(t.received, 3);
        assert_eq!(t.lost, 1);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.unexpected, 2);
        assert_eq!(t.latencies_us, vec![500, 2_000, 6_000]);
        assert_eq!(t.latency_ms(0.5), 2.0);
        assert_eq!(t.latency_ms(0.99), 6.0);
        assert_eq!(t.max_ms(), 6.0);
    }

    #[test]
    fn percentiles_are_nearest_rank_over_all_receipts() {
        let sent: Vec<Sent> = (0..1000).map(|_| Sent::Created { at_us: 0 }).collect();
        let receipts: Vec<(usize, u64)> = (0..1000).map(|i| (i, (i as u64 + 1) * 1000)).collect();
        let t = Tally::new(&sent, &receipts);
        assert_eq!(t.latency_ms(0.5), 500.0);
        assert_eq!(t.latency_ms(0.9), 900.0);
        assert_eq!(t.latency_ms(0.99), 990.0);
        assert_eq!(t.max_ms(), 1000.0);
    }

    #[test]
    fn nothing_received_gives_no_latency() {
        let t = Tally::new(&[Sent::Created { at_us: 5 }], &[]);
        assert_eq!((t.created, t.lost, t.received), (1, 1, 0));
        assert!(t.latency_ms(0.5).is_nan());
        assert!(t.max_ms().is_nan());
    }
}
