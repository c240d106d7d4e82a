//! The control thread's side of `/metrics` (spec §10).
//!
//! Keeps what only the control thread knows — reload results, the io driver — next to an
//! `Arc` of every worker's metrics (handed over when the workers were spawned), and answers
//! each `Report::Scrape` a worker sends with the rendered text of the whole process. Runs on
//! the control thread, where reading `/proc` and building a string may take a while without
//! stalling a worker (the worker awaits the reply asynchronously).

use std::sync::Arc;

use super::Control;
use crate::observe::metrics::WorkerMetrics;
use crate::observe::process::ProcessStats;
use crate::observe::render::{self, ControlValues};
use crate::worker::commands::Report;
use crate::worker::runtime::DriverKind;

/// The control thread's metrics and its view of the workers'.
pub(super) struct ControlMetrics {
    workers: Vec<Arc<WorkerMetrics>>,
    driver: DriverKind,
    reloads_ok: u64,
    reloads_failed: u64,
}

impl ControlMetrics {
    pub(super) fn new(workers: Vec<Arc<WorkerMetrics>>, driver: DriverKind) -> Self {
        ControlMetrics {
            workers,
            driver,
            reloads_ok: 0,
            reloads_failed: 0,
        }
    }

    /// Counts a successful reload; returns the total so far.
    pub(super) fn reload_succeeded(&mut self) -> u64 {
        self.reloads_ok += 1;
        self.reloads_ok
    }

    /// Counts a rejected reload; returns the total so far.
    pub(super) fn reload_failed(&mut self) -> u64 {
        self.reloads_failed += 1;
        self.reloads_failed
    }

    /// The scrape text, with `generation` the running config generation.
    pub(super) fn render(&self, generation: u64) -> String {
        let control = ControlValues {
            reloads_ok: self.reloads_ok,
            reloads_failed: self.reloads_failed,
            generation,
            driver: self.driver.name(),
        };
        render::render(&self.workers, &control, &ProcessStats::read())
    }

    /// Sends the scrape text to a waiting worker (which may have given up: then nothing).
    pub(super) fn answer(&self, reply: &flume::Sender<String>, generation: u64) {
        let _ = reply.send(self.render(generation));
    }
}

impl Control {
    /// Handles a report that arrives while the control thread waits for something else: a
    /// scrape is answered at once (so a reload or shutdown never stalls `/metrics`), others
    /// are logged.
    pub(super) fn on_side_report(&self, report: Report) {
        match report {
            Report::Scrape { reply } => self.metrics.answer(&reply, self.generation),
            other => tracing::debug!(?other, "late report"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_control_values() {
        let mut m = ControlMetrics::new(vec![Arc::default(), Arc::default()], DriverKind::Epoll);
        assert_eq!(m.reload_succeeded(), 1);
        assert_eq!(m.reload_failed(), 1);
        assert_eq!(m.reload_failed(), 2);
        let text = m.render(7);
        assert!(text.contains("\ndito_config_reloads_total{result=\"success\"} 1\n"));
        assert!(text.contains("\ndito_config_reloads_total{result=\"failure\"} 2\n"));
        assert!(text.contains("\ndito_config_generation 7\n"));
        assert!(text.contains("\ndito_io_driver{driver=\"epoll\"} 1\n"));
        assert!(text.contains("\ndito_worker_connections{worker=\"1\"} 0\n"));
        let (tx, rx) = flume::bounded(1);
        m.answer(&tx, 7);
        assert!(rx
            .try_recv()
            .is_ok_and(|t| t.contains("dito_config_generation 7")));
    }
}
