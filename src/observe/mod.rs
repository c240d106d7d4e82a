//! Observability: process logging (`log`: queues, formats, per-thread levels), access lines
//! and header dumps (`access`), the metrics of spec §10, and the last phase of a request
//! (`request`: count it, log it).
//!
//! Metrics follow design §1 "the rule": each worker counts into its own
//! [`metrics::WorkerMetrics`] through its worker-local [`recorder::Recorder`] (single writer,
//! relaxed stores, no locks); a scrape that arrives on a worker asks the control thread
//! ([`scrape`]), which reads every worker's values and renders the text ([`render`]).

pub mod access;
pub mod access_line;
pub mod counters;
pub mod log;
pub mod metrics;
pub mod plugin_series;
pub mod process;
pub mod profiler;
pub mod recorder;
pub mod render;
pub mod request;
pub mod scrape;
pub mod series;
pub mod tunnel_series;
