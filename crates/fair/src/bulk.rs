//! Bulk streams on worker threads of their own.
//!
//! Fair turns ([`crate::Fair`]) bound how long a bulk stream keeps its worker thread, but
//! the thread stays busy: an interactive stream's bytes arriving meanwhile wait for the
//! operating system to give a busy thread (or the process's other busy worker) a core,
//! at every process they cross. On a machine whose cores a transfer saturates, that wait
//! made a round trip beside a bulk stream several times slower than one alone.
//!
//! So a stream that has carried [`BULK_BYTES`] moves to a runtime of its own, the bulk
//! runtime, for the rest of its life. The process's main worker threads, which serve the
//! interactive streams, are then idle most of the time, and a thread woken from idle is
//! the one the operating system runs first. Sockets opened as [`MovableTcp`] move to the
//! bulk runtime's I/O driver with the stream; any other socket stays registered with the
//! runtime that opened it, which then wakes the bulk task on every readiness event.
//!
//! The bulk runtime is made on first use, with a worker thread for every second core (at
//! least one), at the same priority as every other thread: the main runtime keeps the
//! other cores' worth of threads for interactive streams while bulk ones run flat out.
//! On two cores, one bulk worker instead of two gave the same bulk throughput and
//! interactive round trips beside it a little faster, in three rounds of three.
//!
//! Even idle main threads can wait for a core a bulk worker holds to the end of its time
//! slice; so bulk workers give way now and then while interactive work is about
//! ([`give_way`]).

use std::future::Future;
use std::sync::OnceLock;
use std::task::Poll;

use tokio::runtime::Runtime;
use tokio_util::task::AbortOnDropHandle;

mod give_way;
mod movable;

pub use movable::MovableTcp;

/// The bytes a stream carries (both ways together) before it moves to the bulk runtime.
/// An interactive session (a shell, a remote desktop at rest, a Modbus poll) stays well
/// below it for minutes; a file transfer passes it within a fraction of a second.
pub const BULK_BYTES: u64 = 8 * 1024 * 1024;

/// Runs `stream` (the task carrying one stream's bytes) on the current runtime until
/// `moved()` (its bytes so far) passes [`BULK_BYTES`], then on the bulk runtime until it
/// ends. Dropping the returned future drops `stream` wherever it runs, so a caller that
/// stops waiting (a session ended, its connection closed) still ends the stream.
pub async fn carry<F>(stream: F, moved: impl Fn() -> u64) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut stream = Box::pin(stream);
    let ended = std::future::poll_fn(|cx| match stream.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending if moved() > BULK_BYTES => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    if let Some(output) = ended {
        return output;
    }
    tracing::debug!(bytes = moved(), "a bulk stream moves to the bulk runtime");
    // The future stays pinned in its box; its first poll there registers the bulk task's
    // waker wherever it waits.
    let handle = AbortOnDropHandle::new(runtime().spawn(stream));
    match handle.await {
        Ok(output) => output,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only an abort cancels it, and only dropping `handle` aborts.
            Err(error) => unreachable!("the bulk task was cancelled while awaited: {error}"),
        },
    }
}

/// The runtime for bulk streams, made on first use.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (cores / 2).max(1);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("portico-bulk")
            .on_thread_start(movable::mark_bulk_thread)
            .enable_all()
            .build()
            // Without threads the process could not have started its main runtime either.
            .unwrap_or_else(|e| panic!("cannot start the bulk runtime: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(10);

    fn thread_name() -> String {
        std::thread::current()
            .name()
            .unwrap_or_default()
            .to_string()
    }

    /// A stream that reports the thread of each step, moving `step` bytes per step.
    async fn stream(
        moved: Arc<AtomicU64>,
        step: u64,
        steps: usize,
        threads: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> u64 {
        for _ in 0..steps {
            moved.fetch_add(step, Ordering::Relaxed);
            let _ = threads.send(thread_name());
            tokio::task::yield_now().await;
        }
        moved.load(Ordering::Relaxed)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stream_moves_to_the_bulk_runtime_once_it_passed_the_bulk_bytes() {
        let moved = Arc::new(AtomicU64::new(0));
        let (threads, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let step = BULK_BYTES / 4;
        let carried = {
            let moved = moved.clone();
            move || moved.load(Ordering::Relaxed)
        };
        let total = tokio::time::timeout(LIMIT, carry(stream(moved, step, 10, threads), carried))
            .await
            .expect("ends");
        assert_eq!(total, 10 * step);
        let mut names = Vec::new();
        while let Ok(name) = seen.try_recv() {
            names.push(name);
        }
        assert_eq!(names.len(), 10);
        // Steps 1 to 4 reach BULK_BYTES, which is not yet past it: still here.
        assert!(names[..5].iter().all(|n| n != "portico-bulk"), "{names:?}");
        assert!(names[5..].iter().all(|n| n == "portico-bulk"), "{names:?}");
    }

    #[tokio::test]
    async fn an_interactive_stream_stays_where_it_started() {
        let moved = Arc::new(AtomicU64::new(0));
        let (threads, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let carried = {
            let moved = moved.clone();
            move || moved.load(Ordering::Relaxed)
        };
        let here = thread_name();
        carry(stream(moved, 1024, 100, threads), carried).await;
        while let Ok(name) = seen.try_recv() {
            assert_eq!(name, here);
        }
    }

    #[tokio::test]
    async fn dropping_the_carry_ends_a_stream_on_the_bulk_runtime() {
        struct Dropped(Option<tokio::sync::oneshot::Sender<String>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                if let Some(tx) = self.0.take() {
                    let _ = tx.send(thread_name());
                }
            }
        }
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
        let moved = Arc::new(AtomicU64::new(0));
        let endless = {
            let moved = moved.clone();
            async move {
                let _guard = Dropped(Some(dropped_tx));
                moved.store(BULK_BYTES + 1, Ordering::Relaxed);
                std::future::pending::<()>().await;
            }
        };
        let carrying = tokio::spawn(carry(endless, move || moved.load(Ordering::Relaxed)));
        // Give it time to move, then stop waiting for it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        carrying.abort();
        let dropped_on = tokio::time::timeout(LIMIT, dropped)
            .await
            .expect("dropped in time")
            .unwrap();
        assert_eq!(dropped_on, "portico-bulk");
    }

    /// Echoes what `tcp` reads, counting the bytes, until it closes.
    async fn echo(mut tcp: MovableTcp, moved: Arc<AtomicU64>) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0; 64 * 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return tcp.moved(),
                Ok(n) => {
                    moved.fetch_add(2 * n as u64, Ordering::Relaxed);
                    if tcp.write_all(&buf[..n]).await.is_err() {
                        return tcp.moved();
                    }
                }
            }
        }
    }

    /// Sends `bytes` through `peer` in pieces and reads each echo back.
    fn echo_through(peer: &mut std::net::TcpStream, bytes: usize) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let piece = vec![7u8; 64 * 1024];
        let mut back = vec![0u8; piece.len()];
        for _ in 0..bytes / piece.len() {
            peer.write_all(&piece)?;
            peer.read_exact(&mut back)?;
        }
        Ok(())
    }

    /// A current-thread runtime standing for the one that opens a connection, and a
    /// connection on loopback: the peer's end (blocking, with a read timeout) and the
    /// accepted end, ready to be registered with a runtime.
    fn opened_connection() -> (
        tokio::runtime::Runtime,
        std::net::TcpStream,
        std::net::TcpStream,
    ) {
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        (main, peer, accepted)
    }

    /// A connection split between two tasks: one waits to read on the runtime that opened
    /// it while the other writes from a bulk thread, which moves the connection. The move
    /// drops the waiting reader's registration; the reader is woken, waits anew, and reads
    /// what arrives after the move.
    #[test]
    fn a_task_waiting_on_a_connection_that_moves_is_woken_and_reads_on() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (main, mut peer, accepted) = opened_connection();

        let (word, moved) = main.block_on(async {
            let tcp = MovableTcp::new(tokio::net::TcpStream::from_std(accepted).unwrap());
            let (mut reading, mut writing) = tokio::io::split(tcp);
            let reader = tokio::spawn(async move {
                let mut word = [0u8; 5];
                let read = reading.read_exact(&mut word).await.map(|_| word);
                (read, reading)
            });
            // Time for the reader to wait on the connection's first registration.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let writer =
                runtime().spawn(async move { writing.write_all(b"moved").await.map(|()| writing) });
            let writing = writer.await.unwrap().expect("written from the bulk thread");
            tokio::task::spawn_blocking(move || {
                use std::io::{Read, Write};
                let mut word = [0u8; 5];
                peer.read_exact(&mut word).unwrap();
                assert_eq!(&word, b"moved");
                peer.write_all(b"hello").unwrap();
                peer
            })
            .await
            .unwrap();
            let (read, reading) = tokio::time::timeout(LIMIT, reader)
                .await
                .expect("the waiting reader was woken after the move")
                .unwrap();
            (read.unwrap(), reading.unsplit(writing).moved())
        });
        assert_eq!(&word, b"hello");
        assert!(
            moved,
            "the connection did not move; the test proves nothing"
        );
    }

    /// After the move, the connection's readiness comes from the bulk runtime's driver:
    /// the stream carries on while the runtime that opened it is not running at all.
    #[test]
    fn a_moved_connection_carries_on_while_the_runtime_that_opened_it_stands_still() {
        let (main, mut peer, accepted) = opened_connection();

        let moved = Arc::new(AtomicU64::new(0));
        let carried = {
            let moved = moved.clone();
            move || moved.load(Ordering::Relaxed)
        };
        let (ended, mut peer) = main.block_on(async {
            let tcp = MovableTcp::new(tokio::net::TcpStream::from_std(accepted).unwrap());
            let ended = tokio::spawn(carry(echo(tcp, moved), carried));
            // Past the bulk bytes while this runtime runs: the stream moves.
            let peer = tokio::task::spawn_blocking(move || {
                echo_through(&mut peer, 6 * 1024 * 1024).unwrap();
                peer
            });
            (ended, peer.await.unwrap())
        });
        // This runtime's driver stands still now; only the bulk runtime's can serve it.
        echo_through(&mut peer, 4 * 1024 * 1024).expect("echoed on the bulk runtime");
        drop(peer);
        let moved_to_bulk = main
            .block_on(async { tokio::time::timeout(LIMIT, ended).await })
            .expect("ends")
            .unwrap();
        assert!(moved_to_bulk);
    }
}
