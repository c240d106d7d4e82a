//! The messages between the control thread and a worker (design §1): commands go to each
//! worker over its own async-aware `flume` channel; reports come back over one
//! `crossbeam-channel` the control thread selects on.

use std::sync::Arc;

use crate::snapshot::Snapshot;

/// Control → worker.
pub enum Command {
    /// Build the worker state of generation `gen` beside the running one, and report.
    /// `listener`: this worker's new socket when `port`/`listen` changed.
    Prepare {
        gen: u64,
        snapshot: Arc<Snapshot>,
        listener: Option<std::net::TcpListener>,
    },
    /// Switch to the prepared generation `gen`.
    Commit { gen: u64 },
    /// Drop what was prepared for `gen`.
    Abort { gen: u64 },
    /// Shutdown began: end every connection after its next response (`Connection: close`,
    /// HTTP/2 GOAWAY); keep accepting and keep idle connections open until `Drain`.
    Closing,
    /// Stop accepting; close idle connections; end busy ones after their response.
    Drain,
}

/// Worker → control.
#[derive(Debug)]
pub enum Report {
    /// Built its runtime with the chosen driver, or could not (`refused`: why, with the
    /// errno and its likely cause); waits for the verdict before it runs (startup only).
    Runtime {
        worker: usize,
        refused: Option<String>,
    },
    /// Accepting on its socket.
    Ready { worker: usize },
    /// Could not start.
    Failed { worker: usize, error: String },
    /// Prepared generation `gen`, or why not.
    Prepared {
        worker: usize,
        gen: u64,
        result: Result<(), String>,
    },
    /// Draining and no connection is left.
    Drained { worker: usize },
    /// A `/metrics` scrape arrived on a worker: the control thread sends the text of the
    /// whole process on `reply` (the worker awaits it with `recv_async`).
    Scrape { reply: flume::Sender<String> },
}
