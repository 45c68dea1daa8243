//! Bulk threads give way to interactive work.
//!
//! On a machine whose cores a transfer saturates, a bulk worker thread is always ready to
//! run. When an interactive stream's bytes arrive, the thread that should carry them is
//! woken, but the operating system may let the bulk thread run on to the end of its time
//! slice first: a millisecond or more, at each process a round trip crosses. The median
//! round trip beside a bulk stream did not show it; the 99th percentile did, at three to
//! seven times a round trip alone.
//!
//! So a bulk thread hands its core over now and then while interactive work is about:
//! every [`GIVE_WAY_BYTES`] it carries, if a connection served by another thread of the
//! process read or wrote a small piece ([`INTERACTIVE_PIECE`]) within the last
//! [`INTERACTIVE_WINDOW`], it yields the core (`sched_yield`), and a woken thread waiting
//! for it runs at once. A yield with nobody waiting returns at once; one with somebody
//! waiting costs the bulk stream that somebody's turn, which is the point.
//!
//! The window, not only the latest bytes: an interactive stream that waits for a core
//! moves no bytes meanwhile, and would otherwise stop the yields just when they are
//! needed. Without interactive work in the window (a transfer alone) nothing yields.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes a bulk thread carries between two looks at interactive work: some 30 µs at the
/// rates two loopback TLS legs reach here, about as long as an interactive thread may wait
/// for the core at each process its bytes cross. Every 128 KiB left round trips beside a
/// transfer 1.35–1.4× their p99 alone; every 32 KiB, 0.95–1.2× (`docs/benchmarks.md`).
/// Looking often costs a transfer alone nothing: without interactive work nothing yields.
pub const GIVE_WAY_BYTES: usize = 32 * 1024;

/// A read or write of fewer bytes than this, on a connection not moved, marks interactive
/// work: a keystroke, a request, an answer. A transfer not moved yet (its first
/// `BULK_BYTES`) reads and writes whole TLS records and larger pieces, and the bulk threads
/// need not give way to it. When every read and write marked interactive work, looking
/// every 64 KiB cost 32 streams starting at once a tenth of their rate.
pub const INTERACTIVE_PIECE: usize = 4 * 1024;

/// How long after an interactive connection last moved bytes bulk threads keep giving
/// way. Far longer than a round trip waits for a core, far shorter than a pause in typing.
pub const INTERACTIVE_WINDOW: Duration = Duration::from_millis(100);

/// Set when a connection served by a thread other than a bulk one moves a small piece,
/// cleared by the bulk threads when they look. A flag rather than a count or a time:
/// while it is set the main threads only read it, so its cache line is written about
/// once per look, not once per read.
static INTERACTIVE_MOVED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This bulk thread's account: bytes since its last look, when it last saw
    /// interactive work.
    static ACCOUNT: Cell<Account> = const { Cell::new(Account::new()) };
}

/// Notes that a connection outside the bulk runtime read or wrote `bytes`.
#[inline]
pub fn moved_off_bulk(bytes: usize) {
    note_off_bulk(&INTERACTIVE_MOVED, bytes);
}

#[inline]
fn note_off_bulk(flag: &AtomicBool, bytes: usize) {
    if bytes < INTERACTIVE_PIECE && !flag.load(Ordering::Relaxed) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// Notes `bytes` carried by the calling bulk thread, which yields its core when it is due.
#[inline]
pub fn carried(bytes: usize) {
    let mut account = ACCOUNT.get();
    let give_way = account.carried(bytes, Instant::now, || {
        INTERACTIVE_MOVED.swap(false, Ordering::Relaxed)
    });
    ACCOUNT.set(account);
    if give_way {
        std::thread::yield_now();
    }
}

/// What a bulk thread knows when deciding whether to give way.
#[derive(Debug, Clone, Copy)]
struct Account {
    since_look: usize,
    interactive_seen: Option<Instant>,
}

impl Account {
    const fn new() -> Account {
        Account {
            since_look: 0,
            interactive_seen: None,
        }
    }

    /// Counts `bytes`; once [`GIVE_WAY_BYTES`] are through, looks (`interactive_moved`
    /// says whether interactive bytes moved since the last look) and answers whether to
    /// give way now. The clock is read only at a look.
    fn carried(
        &mut self,
        bytes: usize,
        now: impl FnOnce() -> Instant,
        interactive_moved: impl FnOnce() -> bool,
    ) -> bool {
        self.since_look += bytes;
        if self.since_look < GIVE_WAY_BYTES {
            return false;
        }
        self.since_look = 0;
        let now = now();
        if interactive_moved() {
            self.interactive_seen = Some(now);
        }
        self.interactive_seen
            .is_some_and(|seen| now.saturating_duration_since(seen) < INTERACTIVE_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECE: usize = 16 * 1024;

    /// Carries `bytes` in pieces at `now`, with interactive bytes moving before each
    /// piece when `interactive`; answers how many times the thread gave way.
    fn carry(account: &mut Account, bytes: usize, now: Instant, interactive: bool) -> usize {
        (0..bytes / PIECE)
            .filter(|_| account.carried(PIECE, || now, || interactive))
            .count()
    }

    #[test]
    fn a_transfer_alone_never_gives_way() {
        let mut account = Account::new();
        assert_eq!(
            carry(&mut account, 64 * GIVE_WAY_BYTES, Instant::now(), false),
            0
        );
    }

    #[test]
    fn beside_interactive_work_it_gives_way_once_per_give_way_bytes() {
        let mut account = Account::new();
        assert_eq!(
            carry(&mut account, 64 * GIVE_WAY_BYTES, Instant::now(), true),
            64
        );
    }

    #[test]
    fn it_keeps_giving_way_through_the_window_and_stops_after_it() {
        let start = Instant::now();
        let mut account = Account::new();
        assert_eq!(carry(&mut account, GIVE_WAY_BYTES, start, true), 1);
        // The interactive stream waits for a core and moves nothing: still within the window.
        let later = start + INTERACTIVE_WINDOW / 2;
        assert_eq!(carry(&mut account, 4 * GIVE_WAY_BYTES, later, false), 4);
        let past = start + INTERACTIVE_WINDOW;
        assert_eq!(carry(&mut account, 4 * GIVE_WAY_BYTES, past, false), 0);
    }

    #[test]
    fn only_small_pieces_mark_interactive_work() {
        let flag = AtomicBool::new(false);
        note_off_bulk(&flag, 16 * 1024);
        note_off_bulk(&flag, INTERACTIVE_PIECE);
        assert!(
            !flag.load(Ordering::Relaxed),
            "a transfer's pieces are not interactive"
        );
        note_off_bulk(&flag, 42);
        assert!(flag.load(Ordering::Relaxed), "a keystroke's piece is");
    }

    #[test]
    fn the_clock_is_read_only_at_a_look() {
        let mut account = Account::new();
        let reads = Cell::new(0);
        for _ in 0..4 * GIVE_WAY_BYTES / PIECE {
            account.carried(
                PIECE,
                || {
                    reads.set(reads.get() + 1);
                    Instant::now()
                },
                || true,
            );
        }
        assert_eq!(reads.get(), 4);
    }
}
