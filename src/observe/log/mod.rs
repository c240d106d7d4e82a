//! Process logging with `tracing` to stdout (spec §11, design §1).
//!
//! [`init`] installs one small `tracing` layer: it decides per event whether the calling
//! thread's level lets it through, formats the line on that thread (`text` or `json`, see
//! `format`), and hands it to the thread's queue (see `queue`); one writer thread writes the
//! queues to stdout in batches. A worker never waits: its queue drops lines when full and
//! counts them. The level is a per-thread value: a worker sets its own ([`set_thread_level`])
//! when it starts and when it commits a generation; every other thread follows the process
//! level the control thread sets on reload ([`set_level`]). Callsites get `sometimes`
//! interest so the check runs on every event and a level change is never cached away.
//! Lines with the [`STARTUP`] target print at every level; lines with the
//! [`ACCESS`](crate::observe::access::ACCESS) target follow `logging.enabled`/`verbose` only,
//! which the caller checks. Events of other crates (h2) are demoted to DEBUG (see
//! [`shown_level`]): what they warn about is what a peer sent, which the peer can repeat at
//! will (issue 17: 100 unsolicited PING ACKs made 100 WARN lines). [`LogHandle::flush_and_stop`] writes everything queued before the
//! process exits.

pub mod format;
pub mod queue;
pub mod throttle;

use std::cell::Cell;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, LogLevel};
use crate::observe::counters::Counter;
use format::Style;

/// Target of lines that are printed whatever the level (spec §11 "startup lines").
pub const STARTUP: &str = "dito::startup";

/// No thread-local level: follow [`PROCESS_LEVEL`].
const UNSET: u8 = 0;

/// The level of threads without their own (control, main, blocking pool); written by the
/// control thread only, on startup and reload.
static PROCESS_LEVEL: AtomicU8 = AtomicU8::new(LevelRank::INFO);

thread_local! {
    static THREAD_LEVEL: Cell<u8> = const { Cell::new(UNSET) };
}

/// Levels as numbers: a line passes when its rank is at most the thread's.
struct LevelRank;

impl LevelRank {
    const ERROR: u8 = 1;
    const WARN: u8 = 2;
    const INFO: u8 = 3;
    const DEBUG: u8 = 4;
    const TRACE: u8 = 5;

    fn of_config(level: LogLevel) -> u8 {
        match level {
            LogLevel::Error => Self::ERROR,
            LogLevel::Warn => Self::WARN,
            LogLevel::Info => Self::INFO,
            LogLevel::Debug => Self::DEBUG,
        }
    }

    fn of_event(level: &Level) -> u8 {
        match *level {
            Level::ERROR => Self::ERROR,
            Level::WARN => Self::WARN,
            Level::INFO => Self::INFO,
            Level::DEBUG => Self::DEBUG,
            Level::TRACE => Self::TRACE,
        }
    }
}

/// Sets the process level: every thread without its own level follows it. Control thread.
pub fn set_level(level: LogLevel) {
    PROCESS_LEVEL.store(LevelRank::of_config(level), Ordering::Relaxed);
}

/// Sets the calling thread's own level. Worker threads: at start and on every commit.
pub fn set_thread_level(level: LogLevel) {
    let _ = THREAD_LEVEL.try_with(|l| l.set(LevelRank::of_config(level)));
}

/// Whether an event at `level` passes the calling thread's level.
fn level_enabled(level: &Level) -> bool {
    let own = THREAD_LEVEL.try_with(Cell::get).unwrap_or(UNSET);
    let max = if own == UNSET {
        PROCESS_LEVEL.load(Ordering::Relaxed)
    } else {
        own
    };
    LevelRank::of_event(level) <= max
}

/// Targets printed whatever the level.
fn always_on(target: &str) -> bool {
    target == STARTUP || target == crate::observe::access::ACCESS
}

/// Whether an event comes from Dito itself (its module paths, and the targets it names).
fn is_own(target: &str) -> bool {
    target
        .strip_prefix("dito")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The level an event is filtered and shown at. Another crate's events are at most DEBUG:
/// h2 logs at WARN what a peer did to it ("recv PING ack that we never sent", reset floods),
/// once per frame or per connection, so a client could fill the log at will; the peer's
/// misbehaviour already ends in a stream or connection error Dito handles (and logs at DEBUG
/// where it is the client's).
fn shown_level(metadata: &Metadata<'_>) -> Level {
    let level = *metadata.level();
    if is_own(metadata.target()) {
        level
    } else {
        // More verbose levels compare greater.
        level.max(Level::DEBUG)
    }
}

/// Gives the calling worker thread its own bounded log queue; `dropped` counts the lines a
/// full queue drops (`dito_log_lines_dropped_total`; single writer: this thread). Call on the
/// worker thread before it logs. Does nothing when logging is not set up.
pub fn register_worker(dropped: Arc<Counter>) {
    queue::register_worker(dropped);
}

/// Where a formatted line goes: the queues in the process, a buffer in tests.
pub trait LineSink: Send + Sync + 'static {
    fn deliver(&self, line: queue::Line);
}

/// The process's queues.
pub struct QueueSink;

impl LineSink for QueueSink {
    fn deliver(&self, line: queue::Line) {
        queue::deliver(line);
    }
}

/// The `tracing` layer: per-event level check, format on the logging thread, hand off.
pub struct LogLayer<K> {
    style: Style,
    sink: K,
}

impl<K: LineSink> LogLayer<K> {
    pub fn new(style: Style, sink: K) -> Self {
        LogLayer { style, sink }
    }
}

impl<S: Subscriber, K: LineSink> Layer<S> for LogLayer<K> {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if always_on(metadata.target()) {
            Interest::always()
        } else {
            // Never cached: the level is per thread and changes on reload.
            Interest::sometimes()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        always_on(metadata.target()) || level_enabled(&shown_level(metadata))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = shown_level(event.metadata());
        let line = format::format_event_at(event, level, self.style, format::now_micros());
        self.sink.deliver(line);
    }
}

/// Owns the writer thread; flushes on [`flush_and_stop`](Self::flush_and_stop) or drop.
pub struct LogHandle {
    writer: Option<queue::Writer>,
}

impl LogHandle {
    /// Writes every queued line to stdout and stops the writer; later lines are written
    /// directly. Call before the process exits. Idempotent.
    pub fn flush_and_stop(&mut self) {
        if let Some(w) = self.writer.take() {
            w.stop();
        }
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}

/// The line style of the installed logger; `None` before [`init`] (unit tests log through
/// whatever `tracing` subscriber they set up).
static INSTALLED_STYLE: OnceLock<Style> = OnceLock::new();

/// The style lines are written in, once [`init`] installed the queues and their writer:
/// callers that format a line themselves (the access line) use it with [`queue::deliver`].
pub fn installed_style() -> Option<Style> {
    INSTALLED_STYLE.get().copied()
}

/// Installs logging: the process level, the format (read once: `logging.format` needs a
/// restart), the queues and their writer thread. Call once, on the control thread; a second
/// call in one process (tests) keeps the first setup and only sets the level.
pub fn init(level: LogLevel, format: LogFormat) -> LogHandle {
    set_level(level);
    let Some(writer) = queue::start() else {
        return LogHandle { writer: None };
    };
    let style = Style {
        format,
        ansi: format == LogFormat::Text && std::io::stdout().is_terminal(),
    };
    if tracing_subscriber::registry()
        .with(LogLayer::new(style, QueueSink))
        .try_init()
        .is_ok()
    {
        let _ = INSTALLED_STYLE.set(style);
    }
    LogHandle {
        writer: Some(writer),
    }
}
