//! The two-phase reload (design §1, spec §9).
//!
//! Load and validate the file, bind new listeners if `port`/`listen` changed, build the new
//! snapshot, then `Prepare(gen)` on every worker; only when every worker answers Ok does
//! `Commit(gen)` go out — otherwise `Abort(gen)`, and every worker stays on the running
//! generation. A rejected reload logs every reason with the same messages as `dito check`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{listeners, Control};
use crate::config::{self, Config};
use crate::observe::log;
use crate::snapshot::Snapshot;
use crate::worker::commands::{Command, Report};

/// How long workers may take to prepare a generation.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(10);

impl Control {
    /// Reloads everything; `trigger` names why, for the log.
    pub(super) fn reload(&mut self, trigger: &str) {
        match self.try_reload() {
            Ok(()) => {
                self.rejected_bytes = None;
                let reloads_ok = self.metrics.reload_succeeded();
                tracing::info!(
                    generation = self.generation,
                    reloads_ok,
                    "config reloaded ({trigger})"
                );
            }
            Err(reasons) => {
                self.rejected_bytes = std::fs::read(&self.path).ok();
                let reloads_failed = self.metrics.reload_failed();
                for r in &reasons {
                    tracing::error!("reload rejected ({trigger}): {r}");
                }
                tracing::warn!(
                    generation = self.generation,
                    reloads_failed,
                    "still serving the running config"
                );
            }
        }
    }

    fn try_reload(&mut self) -> Result<(), Vec<String>> {
        let file = self.path.display().to_string();
        let bytes = std::fs::read(&self.path).map_err(|e| vec![format!("{file}: {e}")])?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| vec![format!("{file}: the file is not valid UTF-8")])?;
        let loaded = config::parse_str(&file, &text).map_err(|e| {
            e.errors
                .iter()
                .map(|d| d.render(&e.file))
                .collect::<Vec<_>>()
        })?;
        for w in &loaded.warnings {
            tracing::warn!("{}", w.render(&file));
        }
        let next = loaded.config;
        warn_restart_only_changes(&self.config, &next);

        let new_addr = SocketAddr::new(next.listen, next.port);
        let listen_changed = next.listen != self.config.listen || next.port != self.config.port;
        let mut new_addr_bound = None;
        let mut sockets = if listen_changed {
            let (s, real) =
                listeners::bind_all(new_addr, self.plan.workers).map_err(|e| vec![e])?;
            new_addr_bound = Some(real);
            s.into_iter().map(Some).collect()
        } else {
            (0..self.plan.workers).map(|_| None).collect::<Vec<_>>()
        };
        let snapshot = Arc::new(Snapshot::build(next.clone()).map_err(|e| vec![e])?);

        let gen = self.generation + 1;
        for (w, listener) in self.workers.iter().zip(sockets.iter_mut()) {
            let cmd = Command::Prepare {
                gen,
                snapshot: snapshot.clone(),
                listener: listener.take(),
            };
            if w.commands.send(cmd).is_err() {
                return Err(vec!["a worker is gone".to_owned()]);
            }
        }
        let failures = self.collect_prepared(gen);
        if !failures.is_empty() {
            for w in &self.workers {
                let _ = w.commands.send(Command::Abort { gen });
            }
            return Err(failures);
        }
        for w in &self.workers {
            let _ = w.commands.send(Command::Commit { gen });
        }
        self.generation = gen;
        if let Some(real) = new_addr_bound {
            tracing::info!("listening on {real} (was {})", self.addr);
            self.addr = real;
        }
        // Workers take the new level from the snapshot when they commit; the control thread
        // and the other threads follow the process level.
        log::set_level(next.logging.level);
        self.apply_hot_reload(next.hot_reload);
        self.config = next;
        self.config_bytes = bytes;
        Ok(())
    }

    /// Waits for every worker's answer to `Prepare(gen)`; returns the failures.
    fn collect_prepared(&self, gen: u64) -> Vec<String> {
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        let mut answered = vec![false; self.workers.len()];
        let mut failures = Vec::new();
        while answered.iter().any(|a| !a) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(Report::Prepared {
                    worker,
                    gen: g,
                    result,
                }) if g == gen => {
                    if let Some(a) = answered.get_mut(worker) {
                        *a = true;
                    }
                    if let Err(e) = result {
                        failures.push(format!("worker {worker} could not prepare: {e}"));
                    }
                }
                // Scrapes are answered while the workers prepare.
                Ok(other) => self.on_side_report(other),
                Err(_) => {
                    failures.push("workers did not prepare the new config in time".to_owned());
                    break;
                }
            }
        }
        failures
    }
}

impl Control {
    /// Starts or stops watching the config file when a reload turns `hot_reload` on or off.
    fn apply_hot_reload(&mut self, on: bool) {
        match (on, self.watcher.is_some()) {
            (true, false) => match super::watch::watch(&self.path, self.events_tx.clone()) {
                Ok(w) => self.watcher = Some(w),
                Err(e) => tracing::error!("hot_reload: cannot watch {}: {e}", self.path.display()),
            },
            (false, true) => self.watcher = None,
            _ => {}
        }
    }
}

/// Keys a reload cannot apply (spec §2) get a WARN when they change.
fn warn_restart_only_changes(old: &Config, new: &Config) {
    let changed: [(&str, bool); 5] = [
        ("workers", old.workers != new.workers),
        ("pin_workers", old.pin_workers != new.pin_workers),
        ("io_driver", old.io_driver != new.io_driver),
        ("logging.format", old.logging.format != new.logging.format),
        (
            "profiler.listen",
            old.profiler.listen != new.profiler.listen,
        ),
    ];
    for (key, differs) in changed {
        if differs {
            tracing::warn!("{key}: changed, but applies only after a restart");
        }
    }
}
