//! The control thread: owns the configuration and the workers' lifecycle (design §1).
//!
//! `run` loads and validates the config, decides the io driver and the worker layout, binds
//! the listeners, builds the first snapshot, starts the workers and waits until each reports
//! ready, then prints the ready line. From then on it waits for events: SIGHUP or a watched
//! file change reloads (`reload`), SIGTERM/SIGINT shuts down gracefully (`shutdown`), a
//! worker's `Report::Scrape` gets the metrics text (`metrics`). It may block; it never touches
//! a worker's state except through messages (and relaxed reads of the workers' metrics).

mod driver;
pub mod listeners;
mod metrics;
mod reload;
mod shutdown;
mod signals;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use metrics::ControlMetrics;

use crate::config::{self, Config, Loaded};
use crate::lifecycle::Lifecycle;
use crate::observe::log::{self, STARTUP};
use crate::observe::profiler;
use crate::snapshot::Snapshot;
use crate::worker::commands::Report;
use crate::worker::cores::WorkerPlan;
use crate::worker::{self, cores, runtime, WorkerHandle};

/// How long workers may take to report ready before startup fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Quiet time after the last file event before a watch-triggered reload.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a watch-triggered reload waits after the first event, however often the file keeps
/// changing: a writer that never pauses must not postpone the reload forever.
const DEBOUNCE_MAX: Duration = Duration::from_millis(600);

/// Something the control thread must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGHUP: reload everything.
    Reload,
    /// The config file (or a link it resolves through) changed.
    FileChanged,
    /// SIGTERM or SIGINT.
    Terminate,
}

/// The running proxy as the control thread sees it.
pub struct Control {
    path: PathBuf,
    /// The bytes of the running config (a watch event with the same bytes does nothing).
    config_bytes: Vec<u8>,
    /// The bytes of the last rejected file: a watch event does not reject them twice.
    rejected_bytes: Option<Vec<u8>>,
    config: Config,
    addr: SocketAddr,
    plan: WorkerPlan,
    workers: Vec<WorkerHandle>,
    reports: Receiver<Report>,
    events: Receiver<Event>,
    /// For a watcher started by a reload that turns `hot_reload` on.
    events_tx: crossbeam_channel::Sender<Event>,
    /// The config watch while `hot_reload` is on; dropping it stops watching.
    watcher: Option<notify::RecommendedWatcher>,
    lifecycle: Arc<Lifecycle>,
    generation: u64,
    /// Reload results, the io driver, and every worker's metrics.
    metrics: ControlMetrics,
}

/// Runs the proxy with the config at `path`, serving CPU profiles on `profiler.listen` when
/// `enable_profiler` is set (spec §1); returns the process exit code.
pub fn run(path: &Path, enable_profiler: bool) -> i32 {
    let bytes = std::fs::read(path).unwrap_or_default();
    let Loaded { config, warnings } = match config::load_file(path) {
        Ok(l) => l,
        Err(e) => {
            // Logging is not set up yet: warnings go to stderr with the errors they explain.
            for w in &e.warnings {
                eprintln!("WARN {}", w.render(&e.file));
            }
            eprintln!("{e}");
            return 1;
        }
    };
    let mut log = log::init(config.logging.level, config.logging.format);
    // Before any worker runs: a panic serving one connection ends that connection only.
    crate::worker::contain::install_hook();
    let file = path.display().to_string();
    for w in &warnings {
        tracing::warn!(target: STARTUP, "{}", w.render(&file));
    }
    // The plugins were loaded with the config, before logging was set up.
    for p in config.plugins.iter().flat_map(|p| &p.loaded) {
        crate::plugin::loader::log_startup(p);
    }
    let code = match start(path, bytes, config, enable_profiler) {
        Ok(mut control) => control.serve(),
        Err(msg) => {
            eprintln!("dito: {msg}");
            tracing::error!(target: STARTUP, "{msg}");
            1
        }
    };
    // Every queued line reaches stdout before the process exits.
    log.flush_and_stop();
    code
}

fn start(
    path: &Path,
    config_bytes: Vec<u8>,
    config: Config,
    enable_profiler: bool,
) -> Result<Control, String> {
    let driver = runtime::choose_driver(config.io_driver)?;
    let snapshot = Arc::new(Snapshot::build(config.clone())?);
    let plan = cores::plan(config.workers, config.pin_workers);
    let addr = SocketAddr::new(config.listen, config.port);
    let (sockets, real_addr) = listeners::bind_all(addr, plan.workers)?;

    tracing::info!(target: STARTUP, "Dito {} starting", env!("CARGO_PKG_VERSION"));
    #[cfg(feature = "fault-injection")]
    tracing::warn!(target: STARTUP, "{}", crate::fault::STARTUP_WARNING);
    let pinning = if plan.pins.is_empty() {
        format!("off ({})", plan.pin_reason)
    } else {
        let cores: Vec<String> = plan.pins.iter().map(|c| c.id.to_string()).collect();
        format!("on ({}; cores {})", plan.pin_reason, cores.join(","))
    };
    if enable_profiler {
        profiler::start(config.profiler.listen)?;
    }

    let (events_tx, events) = crossbeam_channel::unbounded();
    signals::forward(events_tx.clone())
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let lifecycle = Arc::new(Lifecycle::default());
    let (reports_tx, reports) = crossbeam_channel::unbounded();
    let workers = worker::spawn(
        &plan,
        driver.kind,
        sockets,
        snapshot,
        lifecycle.clone(),
        reports_tx,
    )
    .map_err(|e| format!("cannot start worker threads: {e}"))?;
    // Every worker on one driver: the one they could all build (`driver`).
    let driver = driver::settle(config.io_driver, driver, &workers, &reports, READY_TIMEOUT)?;
    match &driver.fallback_reason {
        Some(why) => tracing::warn!(
            target: STARTUP,
            "io driver: {} ({why}; falling back)",
            driver.kind.name()
        ),
        None => tracing::info!(target: STARTUP, "io driver: {}", driver.kind.name()),
    }
    tracing::info!(target: STARTUP, "workers: {}, pinning: {pinning}", plan.workers);
    tracing::info!(target: STARTUP, "listening on {real_addr}");
    let metrics = ControlMetrics::new(
        workers.iter().map(|w| w.metrics.clone()).collect(),
        driver.kind,
    );
    let ready_deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = 0;
    while ready < plan.workers {
        let left = ready_deadline.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok(Report::Ready { .. }) => ready += 1,
            Ok(Report::Failed { worker, error }) => {
                return Err(format!("worker {worker} failed to start: {error}"))
            }
            // A worker that is ready already serves, scrapes included.
            Ok(Report::Scrape { reply }) => metrics.answer(&reply, 1),
            Ok(other) => tracing::debug!(?other, "unexpected report during startup"),
            Err(_) => return Err("workers did not become ready in time".to_owned()),
        }
    }
    lifecycle.set_ready();
    let watcher = if config.hot_reload {
        Some(
            watch::watch(path, events_tx.clone())
                .map_err(|e| format!("hot_reload: cannot watch {}: {e}", path.display()))?,
        )
    } else {
        None
    };
    tracing::info!(target: STARTUP, "Dito is ready on {real_addr}");
    Ok(Control {
        path: path.to_path_buf(),
        config_bytes,
        rejected_bytes: None,
        config,
        addr: real_addr,
        plan,
        workers,
        reports,
        events,
        events_tx,
        watcher,
        lifecycle,
        generation: 1,
        metrics,
    })
}

impl Control {
    /// Serves until shutdown; returns the exit code.
    fn serve(&mut self) -> i32 {
        loop {
            select! {
                recv(self.events) -> ev => match ev {
                    Ok(Event::Reload) => self.reload("SIGHUP"),
                    // Events still queued from a watch a reload just stopped are ignored.
                    Ok(Event::FileChanged) if self.watcher.is_some() => {
                        if let Some(code) = self.reload_if_changed() {
                            return code;
                        }
                    }
                    Ok(Event::FileChanged) => {}
                    Ok(Event::Terminate) => return self.shutdown(),
                    Err(_) => return 1,
                },
                recv(self.reports) -> r => match r {
                    Ok(Report::Failed { worker, error }) => {
                        tracing::error!("worker {worker} stopped: {error}");
                        return 1;
                    }
                    Ok(other) => self.on_side_report(other),
                    Err(_) => return 1,
                },
            }
        }
    }

    /// Debounces file events (quiet for `DEBOUNCE`, at most `DEBOUNCE_MAX` after the first),
    /// then reloads unless the bytes equal the running config's.
    /// Scrapes are answered meanwhile. `Some(code)` when a signal during the debounce shut
    /// the proxy down.
    fn reload_if_changed(&mut self) -> Option<i32> {
        let first = Instant::now();
        let mut quiet_until = first + DEBOUNCE;
        loop {
            let left = quiet_until
                .min(first + DEBOUNCE_MAX)
                .saturating_duration_since(Instant::now());
            select! {
                recv(self.events) -> ev => match ev {
                    Ok(Event::FileChanged) => quiet_until = Instant::now() + DEBOUNCE,
                    Ok(Event::Reload) => {
                        self.reload("SIGHUP");
                        return None;
                    }
                    Ok(Event::Terminate) => return Some(self.shutdown()),
                    Err(_) => break,
                },
                recv(self.reports) -> r => {
                    if let Ok(r) = r {
                        self.on_side_report(r);
                    }
                }
                default(left) => break,
            }
        }
        match std::fs::read(&self.path) {
            Ok(bytes)
                if bytes == self.config_bytes || Some(&bytes) == self.rejected_bytes.as_ref() => {}
            _ => self.reload("file change"),
        }
        None
    }
}
