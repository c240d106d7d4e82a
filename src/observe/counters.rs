//! Per-worker counters (design §1 "the rule"): each worker is the only writer of its own
//! counters, so an increment is a relaxed load and store, never a locked read-modify-write;
//! the control thread reads them with relaxed loads when metrics are scraped (the metrics work
//! renders them).

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter written by one thread only.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// `dito_response_limit_exceeded_total`.
    pub response_limit_exceeded: Counter,
    /// `dito_requests_rejected_total{reason="request_too_large"}`.
    pub request_too_large: Counter,
}
