//! Where formatted lines go (design §1): per-worker bounded queues and one writer thread.
//!
//! A worker thread registers its own bounded queue ([`register_worker`]) and hands every line
//! to it with `try_send`: when the queue is full the line is dropped and the worker's counter
//! goes up, so a worker never waits on logging. Access lines, one per request, are gathered
//! on the worker first ([`gather_worker_line`]) and queued as one message per 16 KiB, or 10 ms
//! after the first of them ([`flush_worker_lines_forever`]), or when the worker logs another
//! line (order is kept) or drains. Every other thread (control, main, the
//! blocking pool) shares one bounded queue with a blocking send, so startup lines and config
//! errors are never lost. One writer thread drains every queue round-robin into a batch that
//! goes out with one `write` to stdout, flushing whenever the queues are empty.
//! [`Writer::stop`] writes what is queued and ends the thread; after that (or whenever the
//! writer is gone) lines are written to stdout directly by the thread that logs them.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Select, Sender, TryRecvError, TrySendError};

use crate::observe::counters::Counter;

/// Messages one worker may have queued: single lines, or batches of gathered access lines
/// (up to 16 KiB each). This absorbs bursts of tens of thousands of requests while the
/// writer is descheduled (the writer itself writes far faster than workers serve).
pub const WORKER_QUEUE_LINES: usize = 16_384;
/// Access lines a worker gathers before queueing them as one message.
const WORKER_BATCH_BYTES: usize = 16 * 1024;
/// The longest a gathered line waits before it is queued.
const WORKER_FLUSH_AFTER: Duration = Duration::from_millis(10);
/// Lines the non-worker threads may have queued before their send blocks.
const SHARED_QUEUE_LINES: usize = 4_096;
/// A batch is written once it is this large, even while queues still hold lines.
const BATCH_BYTES: usize = 256 * 1024;
/// Lines taken from one queue before the writer moves to the next (fairness).
const BURST_LINES: usize = 512;
/// The writer's pause between passes while lines keep coming.
const POLL_PAUSE: Duration = Duration::from_millis(1);
/// How long the writer keeps polling after the last line before it blocks.
const IDLE_BEFORE_BLOCK: Duration = Duration::from_millis(100);
/// How long `stop` keeps writing lines that are still arriving.
const STOP_LIMIT: Duration = Duration::from_secs(2);

/// One line, formatted and ending in `\n`.
pub type Line = Vec<u8>;

enum Ctl {
    /// A worker's new queue.
    Register(Receiver<Line>),
    /// Write what is queued, then end.
    Stop,
}

/// The process-wide ends of the queues, set once by [`start`].
struct Shared {
    lines: Sender<Line>,
    ctl: Sender<Ctl>,
    stopped: AtomicBool,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

thread_local! {
    static WORKER_QUEUE: RefCell<Option<WorkerQueue>> = const { RefCell::new(None) };
}

/// A worker's end of its own queue, with the access lines it is gathering.
pub struct WorkerQueue {
    tx: Sender<Line>,
    dropped: Arc<Counter>,
    /// Access lines not yet queued: they go as one message of up to [`WORKER_BATCH_BYTES`]
    /// (one allocation and one channel operation per batch, not per request).
    pending: RefCell<Vec<u8>>,
    pending_lines: Cell<u64>,
    /// The worker's flusher task, waiting for a first pending line.
    flusher: Cell<Option<Waker>>,
}

impl WorkerQueue {
    /// A queue of `capacity` messages counting dropped lines in `dropped`, and its reading
    /// end.
    pub fn new(capacity: usize, dropped: Arc<Counter>) -> (WorkerQueue, Receiver<Line>) {
        let (tx, rx) = bounded(capacity);
        let q = WorkerQueue {
            tx,
            dropped,
            pending: RefCell::new(Vec::new()),
            pending_lines: Cell::new(0),
            flusher: Cell::new(None),
        };
        (q, rx)
    }

    /// Queues `line` without waiting, after any gathered lines (order is kept): a full
    /// queue drops it and counts it.
    pub fn offer(&self, line: Line) {
        self.flush_pending();
        self.send(line, 1);
    }

    fn send(&self, msg: Line, lines: u64) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped.add(lines),
            // The writer has stopped (the process is exiting): nothing is queued any more.
            Err(TrySendError::Disconnected(msg)) => write_direct(&msg),
        }
    }

    /// Appends one line with `write` to the gathered lines; queues them once they fill a
    /// batch. False when the buffer is busy (a re-entrant log call): the caller queues the
    /// line itself.
    fn gather(&self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let Ok(mut pending) = self.pending.try_borrow_mut() else {
            return false;
        };
        if pending.capacity() == 0 {
            pending.reserve(WORKER_BATCH_BYTES + 1024);
        }
        let was_empty = pending.is_empty();
        write(&mut pending);
        self.pending_lines.set(self.pending_lines.get() + 1);
        let full = pending.len() >= WORKER_BATCH_BYTES;
        drop(pending);
        if full {
            self.flush_pending();
        } else if was_empty {
            if let Some(w) = self.flusher.take() {
                w.wake();
            }
        }
        true
    }

    /// Queues the gathered lines now.
    fn flush_pending(&self) {
        let Ok(mut pending) = self.pending.try_borrow_mut() else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut *pending);
        drop(pending);
        let lines = self.pending_lines.replace(0);
        self.send(batch, lines);
    }
}

/// Appends one line, written by `write`, to the calling worker's gathered lines (the access
/// line's path); false when this thread has no worker queue — then queue it with [`deliver`].
pub fn gather_worker_line(write: impl FnOnce(&mut Vec<u8>)) -> bool {
    WORKER_QUEUE
        .try_with(|q| match q.try_borrow() {
            Ok(q) => q.as_ref().is_some_and(|q| q.gather(write)),
            Err(_) => false,
        })
        .unwrap_or(false)
}

/// Queues the calling worker's gathered lines now (before it reports drained, and when it
/// ends).
pub fn flush_worker() {
    let _ = WORKER_QUEUE.try_with(|q| {
        if let Ok(q) = q.try_borrow() {
            if let Some(q) = q.as_ref() {
                q.flush_pending();
            }
        }
    });
}

/// Runs on each worker for as long as it lives: [`WORKER_FLUSH_AFTER`] after a first line is
/// gathered, queues what was gathered, so a quiet worker's lines never wait longer.
pub async fn flush_worker_lines_forever() {
    loop {
        let has_queue = std::future::poll_fn(|cx| {
            let pending = WORKER_QUEUE
                .try_with(|q| match q.try_borrow() {
                    Ok(q) => match q.as_ref() {
                        Some(q) => {
                            let has = q.pending.try_borrow().is_ok_and(|p| !p.is_empty());
                            if !has {
                                q.flusher.set(Some(cx.waker().clone()));
                            }
                            Some(has)
                        }
                        None => None,
                    },
                    Err(_) => Some(false),
                })
                .ok()
                .flatten();
            match pending {
                Some(true) => Poll::Ready(true),
                // No queue on this thread: nothing will ever be gathered.
                None => Poll::Ready(false),
                Some(false) => Poll::Pending,
            }
        })
        .await;
        if !has_queue {
            std::future::pending::<()>().await;
        }
        monoio::time::sleep(WORKER_FLUSH_AFTER).await;
        flush_worker();
    }
}

/// The running writer thread.
pub struct Writer {
    thread: thread::JoinHandle<()>,
}

impl Writer {
    /// Writes every queued line, flushes stdout and ends the writer. Lines logged afterwards
    /// are written directly by the thread that logs them.
    pub fn stop(self) {
        if let Some(shared) = SHARED.get() {
            shared.stopped.store(true, Ordering::SeqCst);
            let _ = shared.ctl.send(Ctl::Stop);
        }
        let _ = self.thread.join();
    }
}

/// Sets up the queues and starts the writer; `None` when they already exist (a second
/// `init` in one process) or the thread cannot start.
pub fn start() -> Option<Writer> {
    let (lines_tx, lines_rx) = bounded(SHARED_QUEUE_LINES);
    let (ctl_tx, ctl_rx) = unbounded();
    let shared = Shared {
        lines: lines_tx,
        ctl: ctl_tx,
        stopped: AtomicBool::new(false),
    };
    if SHARED.set(shared).is_err() {
        return None;
    }
    let thread = thread::Builder::new()
        .name("dito-log".to_owned())
        .spawn(move || write_loop(ctl_rx, vec![lines_rx], &mut std::io::stdout()));
    match thread {
        Ok(thread) => Some(Writer { thread }),
        Err(_) => {
            // Without a writer every line goes out directly.
            if let Some(shared) = SHARED.get() {
                shared.stopped.store(true, Ordering::SeqCst);
            }
            None
        }
    }
}

/// Gives the calling thread its own queue (design §1): call it on the worker thread before
/// it logs. `dropped` counts the lines the full queue drops (`dito_log_lines_dropped_total`).
/// Does nothing when logging is not set up.
pub fn register_worker(dropped: Arc<Counter>) {
    let Some(shared) = SHARED.get() else { return };
    let (queue, rx) = WorkerQueue::new(WORKER_QUEUE_LINES, dropped);
    if shared.ctl.send(Ctl::Register(rx)).is_err() {
        return;
    }
    let _ = WORKER_QUEUE.try_with(|q| *q.borrow_mut() = Some(queue));
}

/// Hands one line to the calling thread's queue.
pub fn deliver(line: Line) {
    let mut line = Some(line);
    let _ = WORKER_QUEUE.try_with(|q| {
        if let Ok(q) = q.try_borrow() {
            if let Some(q) = q.as_ref() {
                if let Some(l) = line.take() {
                    q.offer(l);
                }
            }
        }
    });
    let Some(line) = line else { return };
    match SHARED.get() {
        Some(shared) if !shared.stopped.load(Ordering::SeqCst) => {
            if let Err(e) = shared.lines.send(line) {
                write_direct(&e.0);
            }
        }
        _ => write_direct(&line),
    }
}

fn write_direct(line: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line);
    let _ = out.flush();
}

/// The writer thread: drains `queues` (and the ones registered through `ctl`) into batches
/// written to `out`, one write per pass. While lines keep coming it drains every
/// [`POLL_PAUSE`] (at once when a queue had more than a burst) instead of blocking or
/// spinning, so a worker's send rarely has to wake it (a wake is a syscall on the worker) and
/// the writer takes little CPU from the workers;
/// after [`IDLE_BEFORE_BLOCK`] without a line it blocks until a queue has one. After `Stop` it
/// writes until a pass finds every queue empty, or [`STOP_LIMIT`] has passed, and returns.
fn write_loop(ctl: Receiver<Ctl>, mut queues: Vec<Receiver<Line>>, out: &mut dyn std::io::Write) {
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES + 4096);
    let mut stop_by: Option<Instant> = None;
    let mut last_line = Instant::now();
    loop {
        while let Ok(msg) = ctl.try_recv() {
            match msg {
                Ctl::Register(rx) => queues.push(rx),
                Ctl::Stop => stop_by = Some(Instant::now() + STOP_LIMIT),
            }
        }
        let mut got = false;
        let mut more = false;
        queues.retain(|q| {
            for _ in 0..BURST_LINES {
                match q.try_recv() {
                    Ok(line) => {
                        got = true;
                        batch.extend_from_slice(&line);
                        if batch.len() >= BATCH_BYTES {
                            let _ = out.write_all(&batch);
                            batch.clear();
                        }
                    }
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => return false,
                }
            }
            // A full burst: this queue has more waiting.
            more = true;
            true
        });
        // One write per pass: what arrived since the last one.
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            batch.clear();
        }
        let now = Instant::now();
        let stop_now = stop_by.is_some_and(|by| !got || now >= by);
        if stop_now {
            let _ = out.flush();
            return;
        }
        if got {
            last_line = now;
            // Let lines gather for a moment instead of spinning on a few at a time: a busy
            // writer would take a core's time from the workers.
            if !more {
                thread::sleep(POLL_PAUSE);
            }
            continue;
        }
        let _ = out.flush();
        if now.duration_since(last_line) < IDLE_BEFORE_BLOCK {
            thread::sleep(POLL_PAUSE);
            continue;
        }
        // Idle: sleep until a queue or the control channel has something.
        let mut sel = Select::new();
        sel.recv(&ctl);
        for q in &queues {
            sel.recv(q);
        }
        let _ = sel.ready();
        last_line = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_full_worker_queue_drops_and_counts() {
        let dropped = Arc::new(Counter::default());
        let (q, rx) = WorkerQueue::new(2, dropped.clone());
        for i in 0..5u8 {
            q.offer(vec![b'0' + i, b'\n']);
        }
        assert_eq!(dropped.get(), 3);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [b"0\n", b"1\n"]);
        q.offer(b"5\n".to_vec());
        assert_eq!(dropped.get(), 3, "room again after draining");
        assert_eq!(rx.try_recv().unwrap(), b"5\n");
    }

    #[test]
    fn gathered_lines_go_as_one_message_before_a_later_line() {
        let (q, rx) = WorkerQueue::new(4, Arc::new(Counter::default()));
        assert!(q.gather(|o| o.extend_from_slice(b"a\n")));
        assert!(q.gather(|o| o.extend_from_slice(b"b\n")));
        assert!(rx.try_recv().is_err(), "gathered, not queued yet");
        q.offer(b"c\n".to_vec());
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [&b"a\nb\n"[..], b"c\n"]);
        q.flush_pending();
        assert!(rx.try_recv().is_err(), "nothing left to flush");
    }

    #[test]
    fn a_full_batch_is_queued_and_a_dropped_batch_counts_its_lines() {
        let dropped = Arc::new(Counter::default());
        let (q, rx) = WorkerQueue::new(1, dropped.clone());
        let line = |o: &mut Vec<u8>| {
            o.extend_from_slice(&[b'x'; 1023]);
            o.push(b'\n');
        };
        for _ in 0..WORKER_BATCH_BYTES / 1024 {
            assert!(q.gather(line));
        }
        assert_eq!(rx.len(), 1, "a full batch is queued at once");
        for _ in 0..WORKER_BATCH_BYTES / 1024 {
            assert!(q.gather(line));
        }
        assert_eq!(dropped.get(), (WORKER_BATCH_BYTES / 1024) as u64);
        assert_eq!(rx.try_recv().unwrap().len(), WORKER_BATCH_BYTES);
    }

    #[test]
    fn the_writer_drains_every_queue_then_stops() {
        let (ctl_tx, ctl_rx) = unbounded();
        let (a_tx, a_rx) = bounded(4);
        let (b_tx, b_rx) = bounded(4);
        a_tx.send(b"a1\n".to_vec()).unwrap();
        b_tx.send(b"b1\n".to_vec()).unwrap();
        ctl_tx.send(Ctl::Register(b_rx)).unwrap();
        a_tx.send(b"a2\n".to_vec()).unwrap();
        ctl_tx.send(Ctl::Stop).unwrap();
        let mut out = Vec::new();
        write_loop(ctl_rx, vec![a_rx], &mut out);
        let text = String::from_utf8(out).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["a1", "a2", "b1"]);
    }

    #[test]
    fn the_writer_batches_lines_into_few_writes() {
        struct Counting {
            writes: usize,
            bytes: Vec<u8>,
        }
        impl std::io::Write for Counting {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.writes += 1;
                self.bytes.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (ctl_tx, ctl_rx) = unbounded();
        let (tx, rx) = bounded(1000);
        for i in 0..1000 {
            tx.send(format!("line {i}\n").into_bytes()).unwrap();
        }
        ctl_tx.send(Ctl::Stop).unwrap();
        let mut out = Counting {
            writes: 0,
            bytes: Vec::new(),
        };
        write_loop(ctl_rx, vec![rx], &mut out);
        assert_eq!(String::from_utf8(out.bytes).unwrap().lines().count(), 1000);
        assert!(out.writes <= 2, "{} writes for 1000 lines", out.writes);
    }
}
