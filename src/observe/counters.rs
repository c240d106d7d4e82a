//! Single-writer counters and gauges (design §1 "the rule").
//!
//! Each value is written by one worker thread only, so an update is a relaxed load and a
//! relaxed store, never a locked read-modify-write; the control thread reads them with relaxed
//! loads when `/metrics` is scraped. Two writers would lose updates (never memory safety):
//! the types that own these values keep their writing methods on a worker-local handle.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic counter written by one thread only.
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

/// A gauge that goes up and down, written by one thread only; never below zero.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn inc(&self) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.saturating_add(1), Ordering::Relaxed);
    }

    pub fn dec(&self) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.saturating_sub(1), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge() {
        let c = Counter::default();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::default();
        g.dec();
        assert_eq!(g.get(), 0);
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
    }
}
