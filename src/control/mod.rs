//! The control thread: owns the configuration and the workers' lifecycle (design §1).
//!
//! `run` loads and validates the config, decides the io driver and the worker layout, binds
//! the listeners, builds the first snapshot, starts the workers and waits until each reports
//! ready, then prints the ready line. Reload, signals and graceful shutdown arrive with the
//! control-plane issue; until then the process serves until it is killed.

pub mod listeners;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, Loaded};
use crate::observe::log::{self, STARTUP};
use crate::snapshot::Snapshot;
use crate::worker::{self, cores, runtime};

/// How long workers may take to report ready before startup fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the proxy with the config at `path`; returns the process exit code.
pub fn run(path: &Path) -> i32 {
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
    log::init(config.logging.level);
    let file = path.display().to_string();
    for w in &warnings {
        tracing::warn!(target: STARTUP, "{}", w.render(&file));
    }
    match start(config) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("dito: {msg}");
            tracing::error!(target: STARTUP, "{msg}");
            1
        }
    }
}

fn start(config: Config) -> Result<(), String> {
    let driver = runtime::choose_driver(config.io_driver)?;
    let (workers, pin, listen, port) = (
        config.workers,
        config.pin_workers,
        config.listen,
        config.port,
    );
    let snapshot = Arc::new(Snapshot::build(config)?);
    let plan = cores::plan(workers, pin);
    let addr = SocketAddr::new(listen, port);
    let (sockets, real_addr) = listeners::bind_all(addr, plan.workers)?;

    tracing::info!(target: STARTUP, "Dito {} starting", env!("CARGO_PKG_VERSION"));
    match &driver.fallback_reason {
        Some(why) => tracing::warn!(
            target: STARTUP,
            "io driver: {} ({why}; falling back)",
            driver.kind.name()
        ),
        None => tracing::info!(target: STARTUP, "io driver: {}", driver.kind.name()),
    }
    let pinning = if plan.pins.is_empty() {
        format!("off ({})", plan.pin_reason)
    } else {
        let cores: Vec<String> = plan.pins.iter().map(|c| c.id.to_string()).collect();
        format!("on ({}; cores {})", plan.pin_reason, cores.join(","))
    };
    tracing::info!(target: STARTUP, "workers: {}, pinning: {pinning}", plan.workers);
    tracing::info!(target: STARTUP, "listening on {real_addr}");

    let (ready_tx, ready_rx) = mpsc::channel();
    let handles = worker::spawn(&plan, driver.kind, sockets, snapshot, ready_tx)
        .map_err(|e| format!("cannot start worker threads: {e}"))?;
    for _ in 0..plan.workers {
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok((_, Ok(()))) => {}
            Ok((id, Err(e))) => return Err(format!("worker {id} failed to start: {e}")),
            Err(_) => return Err("workers did not become ready in time".to_owned()),
        }
    }
    tracing::info!(target: STARTUP, "Dito is ready on {real_addr}");
    for h in handles {
        let _ = h.join();
    }
    // Workers only return when their runtime fails.
    match ready_rx.try_recv() {
        Ok((id, Err(e))) => Err(format!("worker {id} stopped: {e}")),
        _ => Err("workers stopped".to_owned()),
    }
}
