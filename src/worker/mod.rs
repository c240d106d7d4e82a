//! Worker threads: one pinned monoio runtime per core (design §1).
//!
//! `spawn` starts `plan.workers` OS threads. Each pins itself (when the plan says so), builds
//! its runtime with the chosen driver, adopts its listener socket, reports ready (or the error
//! that stopped it), then serves while it follows the control thread's commands: prepare a
//! generation beside the running one, commit or abort it, drain. Everything a worker touches on
//! the request path is its own. A panic while serving a connection is contained to it
//! (`contain`); a panic anywhere else ends the process with [`EXIT_WORKER_DIED`].

pub mod commands;
pub mod contain;
pub mod cores;
pub mod listener;
pub mod runtime;
pub mod signal;
pub mod state;

use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use monoio::blocking::DefaultThreadPool;

use crate::lifecycle::Lifecycle;
use crate::observe::log;
use crate::observe::metrics::WorkerMetrics;
use crate::snapshot::Snapshot;
use commands::{Command, Report};
use cores::WorkerPlan;
use runtime::{DriverKind, Verdict, WorkerRuntime};
use signal::LocalSignal;
use state::{Generation, WorkerState};

/// Threads of the shared blocking pool (DNS and file IO, off the workers).
const BLOCKING_THREADS: usize = 2;
/// How long a worker waits for the control thread's verdict on its runtime.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a draining worker checks whether its last connection has ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Exit status of a process whose worker thread died (a panic outside every connection task):
/// EX_SOFTWARE, an internal error, so a supervisor restarts it.
pub const EXIT_WORKER_DIED: i32 = 70;

/// What the control thread keeps of a worker.
pub struct WorkerHandle {
    pub commands: flume::Sender<Command>,
    /// The answer to the worker's `Report::Runtime` (startup only).
    pub verdict: crossbeam_channel::Sender<Verdict>,
    /// The worker's metrics, which the control thread reads when `/metrics` is scraped.
    pub metrics: Arc<WorkerMetrics>,
    pub thread: thread::JoinHandle<()>,
}

/// Starts every worker. Each builds its runtime with `driver` and sends `Runtime` on
/// `reports`, then waits for the control thread's [`Verdict`] on its handle; then one `Ready`
/// or `Failed`.
pub fn spawn(
    plan: &WorkerPlan,
    driver: DriverKind,
    listeners: Vec<std::net::TcpListener>,
    snapshot: Arc<Snapshot>,
    lifecycle: Arc<Lifecycle>,
    reports: crossbeam_channel::Sender<Report>,
) -> std::io::Result<Vec<WorkerHandle>> {
    let pool = DefaultThreadPool::new(BLOCKING_THREADS);
    let mut handles = Vec::with_capacity(plan.workers);
    for (id, std_listener) in listeners.into_iter().enumerate() {
        let core = plan.pins.get(id).copied();
        let (tx, rx) = flume::unbounded();
        let (verdict_tx, verdict_rx) = crossbeam_channel::bounded(1);
        let metrics = Arc::new(WorkerMetrics::default());
        let ctx = WorkerCtx {
            id,
            metrics: metrics.clone(),
            snapshot: snapshot.clone(),
            lifecycle: lifecycle.clone(),
            reports: reports.clone(),
            commands: rx,
            fail_prepare: fails_prepare(id),
        };
        let pool = pool.clone();
        // Lines this worker's full log queue drops count in its metrics.
        let dropped = metrics.log_lines_dropped_counter();
        let thread = thread::Builder::new()
            .name(format!("dito-worker-{id}"))
            .spawn(move || {
                contain::mark_worker_thread(id);
                // This thread's own log queue and level, before it logs anything.
                log::register_worker(dropped);
                log::set_thread_level(ctx.snapshot.config.logging.level);
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = id, core = core.id, "could not pin worker");
                    }
                }
                let reports = ctx.reports.clone();
                let Some(mut rt) = agree_on_runtime(id, driver, &pool, &reports, &verdict_rx)
                else {
                    return;
                };
                // The panic hook ends the process first (`contain`); this catch is the same
                // end when no hook is installed.
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    rt.block_on(worker_main(ctx, std_listener))
                }));
                if ran.is_err() {
                    worker_died(id);
                }
            })?;
        handles.push(WorkerHandle {
            commands: tx,
            verdict: verdict_tx,
            metrics,
            thread,
        });
    }
    Ok(handles)
}

/// Builds this thread's runtime, reports whether it could, and follows the control thread's
/// verdict (all workers on one driver). `None`: the worker does not start (any failure is
/// reported).
fn agree_on_runtime(
    id: usize,
    driver: DriverKind,
    pool: &DefaultThreadPool,
    reports: &crossbeam_channel::Sender<Report>,
    verdict: &crossbeam_channel::Receiver<Verdict>,
) -> Option<WorkerRuntime> {
    let built = WorkerRuntime::build(driver, pool);
    let refused = built.as_ref().err().map(runtime::describe_ring_failure);
    let _ = reports.send(Report::Runtime {
        worker: id,
        refused,
    });
    // The control thread answers at once when every worker has reported; it is gone only
    // when startup failed.
    match verdict.recv_timeout(VERDICT_TIMEOUT) {
        Ok(Verdict::Run) => built.ok(),
        Ok(Verdict::Epoll) => {
            // The io_uring runtime (if any) goes first: its ring is what did not fit.
            drop(built);
            match WorkerRuntime::build(DriverKind::Epoll, pool) {
                Ok(rt) => Some(rt),
                Err(e) => {
                    let _ = reports.send(Report::Failed {
                        worker: id,
                        error: format!("runtime: {e}"),
                    });
                    None
                }
            }
        }
        Ok(Verdict::Stop) | Err(_) => None,
    }
}

/// A worker thread panicked outside every connection task (the panic message went to stderr
/// already): its listener would accept into a queue no thread reads, so the process exits at
/// once, non-zero, for its supervisor to restart it (spec §12).
pub(crate) fn worker_died(id: usize) -> ! {
    let msg = format!(
        "worker {id} died (a panic outside any connection task); exiting with status {EXIT_WORKER_DIED}"
    );
    tracing::error!("{msg}");
    eprintln!("dito: {msg}");
    std::process::exit(EXIT_WORKER_DIED);
}

/// Test builds: whether worker `id` refuses to prepare reloads (`fault`).
#[cfg(feature = "fault-injection")]
fn fails_prepare(id: usize) -> bool {
    crate::fault::fails_prepare(id)
}

#[cfg(not(feature = "fault-injection"))]
fn fails_prepare(_id: usize) -> bool {
    false
}

struct WorkerCtx {
    id: usize,
    metrics: Arc<WorkerMetrics>,
    snapshot: Arc<Snapshot>,
    lifecycle: Arc<Lifecycle>,
    reports: crossbeam_channel::Sender<Report>,
    commands: flume::Receiver<Command>,
    fail_prepare: bool,
}

async fn worker_main(ctx: WorkerCtx, std_listener: std::net::TcpListener) {
    let id = ctx.id;
    let listener = match monoio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ctx.reports.send(Report::Failed {
                worker: id,
                error: format!("listener: {e}"),
            });
            return;
        }
    };
    let state = match WorkerState::new(
        id,
        ctx.snapshot,
        ctx.lifecycle,
        ctx.metrics,
        ctx.reports.clone(),
    ) {
        Ok(state) => Rc::new(state),
        Err(error) => {
            let _ = ctx.reports.send(Report::Failed { worker: id, error });
            return;
        }
    };
    // Plugin counters go to this worker's metrics (weakly held: the state ends with the loop).
    let weak = Rc::downgrade(&state);
    crate::plugin::host_api::COUNTERS.with(|c| {
        *c.borrow_mut() = Some(Rc::new(move |plugin: &str, name: &str, delta: u64| {
            if let Some(state) = weak.upgrade() {
                state.metrics.plugin_count(plugin, name, delta);
            }
        }));
    });
    let mut stop_accepting = LocalSignal::default();
    listener::spawn_accept_loop(listener, state.clone(), stop_accepting.clone());
    monoio::spawn(sweep_pool(state.clone()));
    monoio::spawn(log::queue::flush_worker_lines_forever());
    let _ = ctx.reports.send(Report::Ready { worker: id });

    let mut pending: Option<(u64, Generation, Option<std::net::TcpListener>)> = None;
    while let Ok(cmd) = ctx.commands.recv_async().await {
        match cmd {
            Command::Prepare {
                gen,
                snapshot,
                listener,
            } => {
                let prepared = if ctx.fail_prepare {
                    Err("test fault: prepare refused".to_owned())
                } else {
                    Generation::prepare(snapshot, &state.tls_configs, &state.server_configs)
                };
                let result = prepared.map(|next| {
                    pending = Some((gen, next, listener));
                });
                let _ = ctx.reports.send(Report::Prepared {
                    worker: id,
                    gen,
                    result,
                });
            }
            Command::Commit { gen } => {
                let Some((g, next, listener)) = pending.take() else {
                    continue;
                };
                if g != gen {
                    continue;
                }
                log::set_thread_level(next.snapshot.config.logging.level);
                state.commit(next);
                if let Some(std_listener) = listener {
                    match monoio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => {
                            // The new socket accepts before the old one closes.
                            let next_stop = LocalSignal::default();
                            listener::spawn_accept_loop(l, state.clone(), next_stop.clone());
                            stop_accepting.fire();
                            stop_accepting = next_stop;
                        }
                        Err(e) => tracing::error!(worker = id, error = %e, "new listener"),
                    }
                }
            }
            Command::Abort { gen } => {
                if pending.as_ref().is_some_and(|(g, _, _)| *g == gen) {
                    pending = None;
                }
            }
            Command::Closing => state.closing.fire(),
            Command::Drain => {
                stop_accepting.fire();
                state.closing.fire();
                state.drain.fire();
                while state.metrics.open_connections() > 0 {
                    monoio::time::sleep(DRAIN_POLL).await;
                }
                // Every access line of this worker is queued before the process may exit.
                log::queue::flush_worker();
                let _ = ctx.reports.send(Report::Drained { worker: id });
            }
        }
    }
    log::queue::flush_worker();
}

/// How often idle upstream connections past their `idle_conn_timeout` are closed.
const POOL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Closes expired idle upstream connections (and forgets ended HTTP/2 ones) for as long as
/// the worker runs.
async fn sweep_pool(state: Rc<WorkerState>) {
    loop {
        monoio::time::sleep(POOL_SWEEP_EVERY).await;
        state.pool.sweep();
        state.h2_conns.sweep();
    }
}
