//! All workers on one io driver (spec §2 `io_driver`, §12): the control thread's side of the
//! startup handshake in which each worker builds its runtime and waits for a verdict.
//!
//! The probe of `runtime::choose_driver` tells whether the kernel refuses io_uring at all; a
//! worker's real ring can still fail (`ENOMEM` when the rings do not fit `RLIMIT_MEMLOCK` of a
//! process without `CAP_IPC_LOCK`: the accounting is per user and a ring is ~400 KiB, so a
//! small ring probes fine while the third worker's does not). So every worker reports, and
//! only then do all run: with `auto`, one refused ring moves every worker to epoll (one WARN
//! line says which errno and why); with `uring`, or when even epoll fails, startup fails with a
//! message saying what to change.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::config::IoDriver;
use crate::worker::commands::Report;
use crate::worker::runtime::{DriverChoice, DriverKind, Verdict, URING_REMEDY};
use crate::worker::WorkerHandle;

/// Waits until every worker reported its runtime (within `wait`), then tells each what to run.
/// Returns the driver they all run, or the startup error.
pub(super) fn settle(
    configured: IoDriver,
    mut choice: DriverChoice,
    workers: &[WorkerHandle],
    reports: &Receiver<Report>,
    wait: Duration,
) -> Result<DriverChoice, String> {
    let deadline = Instant::now() + wait;
    let mut reported = 0;
    let mut refused: Option<(usize, String)> = None;
    while reported < workers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok(Report::Runtime { worker, refused: r }) => {
                reported += 1;
                if let (Some(why), None) = (r, &refused) {
                    refused = Some((worker, why));
                }
            }
            Ok(Report::Failed { worker, error }) => {
                tell(workers, Verdict::Stop);
                return Err(format!("worker {worker} failed to start: {error}"));
            }
            Ok(other) => tracing::debug!(?other, "unexpected report before the workers run"),
            Err(_) => {
                tell(workers, Verdict::Stop);
                return Err("workers did not build their runtimes in time".to_owned());
            }
        }
    }
    let Some((worker, why)) = refused else {
        tell(workers, Verdict::Run);
        return Ok(choice);
    };
    if choice.kind == DriverKind::Uring && configured == IoDriver::Auto {
        tell(workers, Verdict::Epoll);
        choice.kind = DriverKind::Epoll;
        choice.fallback_reason = Some(format!(
            "worker {worker} cannot create its io_uring ring: {why}"
        ));
        return Ok(choice);
    }
    tell(workers, Verdict::Stop);
    Err(match choice.kind {
        DriverKind::Uring => format!(
            "io_driver: uring: worker {worker} cannot create its io_uring ring: {why}; \
             {URING_REMEDY}"
        ),
        DriverKind::Epoll => format!("worker {worker} failed to start: runtime: {why}"),
    })
}

fn tell(workers: &[WorkerHandle], verdict: Verdict) {
    for w in workers {
        let _ = w.verdict.send(verdict);
    }
}
