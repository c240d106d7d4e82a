//! The WebSocket tunnel metrics of spec §10 (issue 11): label vocabularies, one worker's
//! values, and their exposition (names and help live in `observe::metrics`).
//!
//! `dito_websocket_connections_active` (gauge), `dito_websocket_connections_total` (tunnels
//! opened), `dito_websocket_connections_closed_total{reason}` (Dito's addition: why tunnels
//! ended) and `dito_websocket_bytes_total{direction}`, counted as bytes move so a long-lived
//! tunnel shows its traffic before it ends. Written by the owning worker, read at scrape time
//! like every other worker metric (`observe::render`).

use std::sync::Arc;

use super::counters::{Counter, Gauge};
use super::metrics::{
    WorkerMetrics, WEBSOCKET_BYTES_TOTAL, WEBSOCKET_CONNECTIONS_ACTIVE,
    WEBSOCKET_CONNECTIONS_CLOSED_TOTAL, WEBSOCKET_CONNECTIONS_TOTAL,
};
use super::render::Exposition;
use crate::relay::tunnel::{Direction, TunnelEnd};

/// Why a tunnel ended, as the `reason` label says it (in [`TunnelEnd`] order).
const REASONS: [(TunnelEnd, &str); 4] = [
    (TunnelEnd::Closed, "closed"),
    (TunnelEnd::Idle, "idle"),
    (TunnelEnd::Stopped, "shutdown"),
    (TunnelEnd::Failed, "error"),
];

const DIRECTIONS: [(Direction, &str); 2] = [
    (Direction::ClientToUpstream, "client_to_upstream"),
    (Direction::UpstreamToClient, "upstream_to_client"),
];

/// One worker's tunnel values.
#[derive(Debug, Default)]
pub struct TunnelSeries {
    active: Gauge,
    opened: Counter,
    closed: [Counter; REASONS.len()],
    bytes: [Counter; DIRECTIONS.len()],
}

fn reason_index(end: TunnelEnd) -> usize {
    REASONS.iter().position(|(e, _)| *e == end).unwrap_or(0)
}

fn direction_index(dir: Direction) -> usize {
    DIRECTIONS.iter().position(|(d, _)| *d == dir).unwrap_or(0)
}

impl TunnelSeries {
    /// Writer only: a tunnel opened.
    pub fn opened(&self) {
        self.active.inc();
        self.opened.inc();
    }

    /// Writer only: a tunnel ended.
    pub fn closed(&self, end: TunnelEnd) {
        self.active.dec();
        if let Some(c) = self.closed.get(reason_index(end)) {
            c.inc();
        }
    }

    /// Writer only: `n` bytes went `dir`.
    pub fn moved(&self, dir: Direction, n: u64) {
        if let Some(c) = self.bytes.get(direction_index(dir)) {
            c.add(n);
        }
    }
}

/// The four families, summed over workers.
pub(super) fn render(out: &mut Exposition, workers: &[Arc<WorkerMetrics>]) {
    let sum = |f: &dyn Fn(&TunnelSeries) -> u64| {
        workers
            .iter()
            .fold(0u64, |acc, w| acc.wrapping_add(f(&w.websocket)))
    };
    out.family(WEBSOCKET_CONNECTIONS_ACTIVE, "gauge");
    out.sample(WEBSOCKET_CONNECTIONS_ACTIVE, &[], sum(&|t| t.active.get()));
    out.family(WEBSOCKET_CONNECTIONS_TOTAL, "counter");
    out.sample(WEBSOCKET_CONNECTIONS_TOTAL, &[], sum(&|t| t.opened.get()));
    out.family(WEBSOCKET_CONNECTIONS_CLOSED_TOTAL, "counter");
    for (i, (_, label)) in REASONS.iter().enumerate() {
        let n = sum(&|t| t.closed.get(i).map_or(0, Counter::get));
        out.sample(WEBSOCKET_CONNECTIONS_CLOSED_TOTAL, &[("reason", label)], n);
    }
    out.family(WEBSOCKET_BYTES_TOTAL, "counter");
    for (i, (_, label)) in DIRECTIONS.iter().enumerate() {
        let n = sum(&|t| t.bytes.get(i).map_or(0, Counter::get));
        out.sample(WEBSOCKET_BYTES_TOTAL, &[("direction", label)], n);
    }
}
