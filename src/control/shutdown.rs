//! Graceful shutdown (spec §12).
//!
//! SIGTERM/SIGINT: `/readyz` turns 503 at once and every response from then on ends its
//! connection (`Connection: close`, GOAWAY on HTTP/2), so keep-alive clients reconnect to
//! another replica; during `shutdown_delay` Dito keeps accepting and keeps idle connections
//! open so load balancers notice; then every worker stops accepting, closes idle keep-alive
//! connections and ends busy ones after their next response; requests get `shutdown_timeout`
//! to finish, then the process exits 0. A second signal exits 1 at once.

use std::time::Instant;

use super::{Control, Event};
use crate::worker::commands::{Command, Report};

impl Control {
    /// Runs the shutdown sequence; returns the exit code.
    pub(super) fn shutdown(&mut self) -> i32 {
        self.lifecycle.start_draining();
        tracing::info!(
            delay = ?self.config.shutdown_delay,
            timeout = ?self.config.shutdown_timeout,
            "shutting down: /readyz now answers 503"
        );
        // From now on every response ends its connection, so keep-alive clients reconnect —
        // through a load balancer that sees `/readyz` 503, to another replica — while this one
        // still answers; idle connections stay open until the delay is over.
        for w in &self.workers {
            let _ = w.commands.send(Command::Closing);
        }
        let delay_end = Instant::now() + self.config.shutdown_delay;
        if let Some(code) = self.wait_watching_signals(delay_end, |_| false) {
            return code;
        }
        for w in &self.workers {
            let _ = w.commands.send(Command::Drain);
        }
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let mut drained = vec![false; self.workers.len()];
        let done = self.wait_watching_signals(deadline, |r| {
            if let Report::Drained { worker } = r {
                if let Some(d) = drained.get_mut(*worker) {
                    *d = true;
                }
            }
            drained.iter().all(|d| *d)
        });
        if let Some(code) = done {
            return code;
        }
        tracing::info!("shutdown complete");
        0
    }

    /// Waits until `until`, or until `on_report` says done. `Some(1)` when a second signal
    /// arrives (exit at once), `None` otherwise.
    fn wait_watching_signals(
        &self,
        until: Instant,
        mut on_report: impl FnMut(&Report) -> bool,
    ) -> Option<i32> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            crossbeam_channel::select! {
                recv(self.events) -> ev => {
                    if ev == Ok(Event::Terminate) {
                        tracing::warn!("second signal: exiting now");
                        return Some(1);
                    }
                }
                recv(self.reports) -> r => {
                    if let Ok(r) = r {
                        // `/metrics` keeps answering while Dito drains.
                        if let Report::Scrape { reply } = &r {
                            self.metrics.answer(reply, self.generation);
                        } else if on_report(&r) {
                            return None;
                        }
                    }
                }
                default(left) => return None,
            }
        }
    }
}
