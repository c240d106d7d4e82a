//! Observability: logging (`log`: queues, formats, per-thread levels), access lines and
//! header dumps (`access`), and per-worker counters (`counters`).

pub mod access;
pub mod counters;
pub mod log;
pub mod profiler;
