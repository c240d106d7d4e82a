//! Observability: logging and per-worker counters now; metrics rendering and the access log
//! arrive with the observability issue.

pub mod counters;
pub mod log;
pub mod profiler;
