//! Worker threads: one pinned monoio runtime per core (design §1).
//!
//! `spawn` starts `plan.workers` OS threads. Each pins itself (when the plan says so), builds
//! its runtime with the chosen driver, adopts its listener socket, reports ready (or the error
//! that stopped it) to the control thread, then accepts until the process ends. Everything a
//! worker touches on the request path is its own.

pub mod cores;
pub mod listener;
pub mod runtime;
pub mod state;

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use monoio::blocking::DefaultThreadPool;

use crate::snapshot::Snapshot;
use cores::WorkerPlan;
use runtime::DriverKind;
use state::WorkerState;

/// What a worker reports once: ready to accept, or why it could not start.
pub type ReadyReport = (usize, Result<(), String>);

/// Threads of the shared blocking pool (DNS and file IO, off the workers).
const BLOCKING_THREADS: usize = 2;

/// Starts every worker; each sends one [`ReadyReport`] on `ready`.
pub fn spawn(
    plan: &WorkerPlan,
    driver: DriverKind,
    listeners: Vec<std::net::TcpListener>,
    snapshot: Arc<Snapshot>,
    ready: mpsc::Sender<ReadyReport>,
) -> std::io::Result<Vec<thread::JoinHandle<()>>> {
    let pool = DefaultThreadPool::new(BLOCKING_THREADS);
    let mut handles = Vec::with_capacity(plan.workers);
    for (id, std_listener) in listeners.into_iter().enumerate() {
        let core = plan.pins.get(id).copied();
        let snapshot = snapshot.clone();
        let ready = ready.clone();
        let pool = pool.clone();
        let handle = thread::Builder::new()
            .name(format!("dito-worker-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = id, core = core.id, "could not pin worker");
                    }
                }
                let ready_err = ready.clone();
                let ran = runtime::block_on(driver, pool, move || async move {
                    let listener = match monoio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready.send((id, Err(format!("listener: {e}"))));
                            return;
                        }
                    };
                    let state = Rc::new(WorkerState::new(id, snapshot));
                    let _ = ready.send((id, Ok(())));
                    listener::accept_loop(listener, state).await;
                });
                if let Err(e) = ran {
                    let _ = ready_err.send((id, Err(format!("runtime: {e}"))));
                }
            })?;
        handles.push(handle);
    }
    Ok(handles)
}
