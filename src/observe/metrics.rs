//! The metrics of spec §10: every name, help text and label vocabulary in one place, and
//! [`WorkerMetrics`], the values one worker counts.
//!
//! A worker is the only writer of its `WorkerMetrics` (through its worker-local
//! [`Recorder`](super::recorder::Recorder)); the control thread holds an `Arc` of every
//! worker's and reads them with relaxed loads when `/metrics` is scraped, summing them by label
//! values (`observe::render`). Nothing here allocates or locks on the request path.

use super::plugin_series::PluginTable;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::counters::{Counter, Gauge};
use super::series::SeriesTable;
use super::tunnel_series::TunnelSeries;
use crate::error::UpstreamErrorKind;

// Families (spec §10). The worker-side ones are counted here; the control-side ones in
// `control::metrics`; `process_*` at scrape time (`observe::process`).
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const ACTIVE_CONNECTIONS: &str = "active_connections";
pub const DATA_TRANSFERRED_BYTES_TOTAL: &str = "data_transferred_bytes_total";
pub const UPSTREAM_ERRORS_TOTAL: &str = "dito_upstream_errors_total";
pub const REQUESTS_REJECTED_TOTAL: &str = "dito_requests_rejected_total";
pub const RESPONSE_LIMIT_EXCEEDED_TOTAL: &str = "dito_response_limit_exceeded_total";
pub const CONFIG_RELOADS_TOTAL: &str = "dito_config_reloads_total";
pub const CONFIG_GENERATION: &str = "dito_config_generation";
pub const WORKER_CONNECTIONS: &str = "dito_worker_connections";
pub const IO_DRIVER: &str = "dito_io_driver";
pub const LOG_LINES_DROPPED_TOTAL: &str = "dito_log_lines_dropped_total";
pub const WORKER_PANICS_TOTAL: &str = "dito_worker_panics_total";
pub const PLUGIN_PANICS_TOTAL: &str = "dito_plugin_panics_total";
pub const PLUGIN_COUNTER_TOTAL: &str = "dito_plugin_counter_total";
pub const WEBSOCKET_CONNECTIONS_ACTIVE: &str = "dito_websocket_connections_active";
pub const WEBSOCKET_CONNECTIONS_TOTAL: &str = "dito_websocket_connections_total";
pub const WEBSOCKET_CONNECTIONS_CLOSED_TOTAL: &str = "dito_websocket_connections_closed_total";
pub const WEBSOCKET_BYTES_TOTAL: &str = "dito_websocket_bytes_total";
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";
pub const PROCESS_THREADS: &str = "process_threads";

/// `# HELP` text of each family.
pub fn help(family: &str) -> &'static str {
    match family {
        HTTP_REQUESTS_TOTAL => "HTTP requests answered, by method, matched location and status.",
        HTTP_REQUEST_DURATION_SECONDS => {
            "Time from the parsed request head to the last response byte written."
        }
        ACTIVE_CONNECTIONS => "Open downstream connections.",
        DATA_TRANSFERRED_BYTES_TOTAL => {
            "Bytes read from (inbound) and written to (outbound) clients."
        }
        UPSTREAM_ERRORS_TOTAL => "Upstream failures, by kind.",
        REQUESTS_REJECTED_TOTAL => "Requests rejected before reaching an upstream, by reason.",
        RESPONSE_LIMIT_EXCEEDED_TOTAL => "Responses that crossed their body size limit.",
        CONFIG_RELOADS_TOTAL => "Configuration reloads, by result.",
        CONFIG_GENERATION => "The running configuration generation (1 at startup).",
        WORKER_CONNECTIONS => "Open downstream connections of each worker.",
        IO_DRIVER => "The io driver the workers use.",
        LOG_LINES_DROPPED_TOTAL => "Log lines dropped because a worker's log queue was full.",
        WORKER_PANICS_TOTAL => {
            "Panics contained to one client connection (it was reset; the worker went on)."
        }
        PLUGIN_PANICS_TOTAL => "Plugin hooks that panicked (the request got 500), by plugin.",
        PLUGIN_COUNTER_TOTAL => "Counters plugins add to, by plugin and counter name.",
        WEBSOCKET_CONNECTIONS_ACTIVE => "Open WebSocket tunnels.",
        WEBSOCKET_CONNECTIONS_TOTAL => "WebSocket tunnels opened (the upstream answered 101).",
        WEBSOCKET_CONNECTIONS_CLOSED_TOTAL => "WebSocket tunnels ended, by reason.",
        WEBSOCKET_BYTES_TOTAL => "Bytes relayed through WebSocket tunnels, by direction.",
        PROCESS_CPU_SECONDS_TOTAL => "Total user and system CPU time spent in seconds.",
        PROCESS_RESIDENT_MEMORY_BYTES => "Resident memory size in bytes.",
        PROCESS_VIRTUAL_MEMORY_BYTES => "Virtual memory size in bytes.",
        PROCESS_OPEN_FDS => "Number of open file descriptors.",
        PROCESS_MAX_FDS => "Maximum number of open file descriptors.",
        PROCESS_START_TIME_SECONDS => "Start time of the process since unix epoch in seconds.",
        PROCESS_THREADS => "Number of OS threads in the process.",
        _ => "",
    }
}

/// Upper bounds of the duration histogram's buckets (spec §10), as `le` label values and in
/// nanoseconds; a last bucket `+Inf` follows.
pub const DURATION_BUCKETS: [(&str, u64); 11] = [
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
    ("10", 10_000_000_000),
];

/// Buckets including `+Inf`.
pub const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// The `method` label: a standard method, else `OTHER` (clients choose methods; labels
/// must stay a small set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    /// Normalises a request method (case-sensitive, as methods are).
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other => "OTHER",
        }
    }
}

/// The `reason` of `dito_requests_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    BadRequest,
    HeaderTimeout,
    BodyTimeout,
    RequestTooLarge,
    UriTooLong,
    HeadersTooLarge,
}

impl RejectReason {
    /// In discriminant order.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::BadRequest,
        RejectReason::HeaderTimeout,
        RejectReason::BodyTimeout,
        RejectReason::RequestTooLarge,
        RejectReason::UriTooLong,
        RejectReason::HeadersTooLarge,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RejectReason::BadRequest => "bad_request",
            RejectReason::HeaderTimeout => "header_timeout",
            RejectReason::BodyTimeout => "body_timeout",
            RejectReason::RequestTooLarge => "request_too_large",
            RejectReason::UriTooLong => "uri_too_long",
            RejectReason::HeadersTooLarge => "headers_too_large",
        }
    }
}

/// The `direction` of `data_transferred_bytes_total`.
pub const INBOUND: &str = "inbound";
pub const OUTBOUND: &str = "outbound";

/// The `path` label of a request no location matched.
pub const UNMATCHED: &str = "unmatched";

/// The labels of one request series; set once, before the series is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLabels {
    pub method: Method,
    /// The matched location's pattern; `None` = `unmatched`.
    pub path: Option<Arc<str>>,
    pub status: u16,
}

impl RequestLabels {
    pub fn path_label(&self) -> &str {
        self.path.as_deref().unwrap_or(UNMATCHED)
    }
}

/// One label combination of `http_requests_total` and `http_request_duration_seconds`.
/// The request count is the sum of the buckets, so the two families always agree.
#[derive(Debug, Default)]
pub struct RequestSeries {
    labels: OnceLock<RequestLabels>,
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [Counter; BUCKETS],
    sum_nanos: Counter,
}

impl RequestSeries {
    pub fn labels(&self) -> Option<&RequestLabels> {
        self.labels.get()
    }

    /// Per-bucket counts (not cumulative), the last being `+Inf`.
    pub fn bucket_counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.buckets.get(i).map_or(0, Counter::get))
    }

    pub fn sum_nanos(&self) -> u64 {
        self.sum_nanos.get()
    }

    /// Writer only.
    pub(super) fn set_labels(&self, labels: RequestLabels) {
        let _ = self.labels.set(labels);
    }

    /// Writer only.
    pub(super) fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|(_, bound)| nanos <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(c) = self.buckets.get(bucket) {
            c.inc();
        }
        self.sum_nanos.add(nanos);
    }
}

/// One worker's metrics: written by that worker only, read by the control thread.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub(super) requests: SeriesTable<RequestSeries>,
    pub(super) connections: Gauge,
    pub(super) inbound: Counter,
    pub(super) outbound: Counter,
    pub(super) upstream_errors: [Counter; UpstreamErrorKind::ALL.len()],
    pub(super) rejected: [Counter; RejectReason::ALL.len()],
    pub(super) response_limit_exceeded: Counter,
    /// Shared with the worker's log queue, which counts into it (`observe::log`).
    pub(super) log_lines_dropped: Arc<Counter>,
    /// Panics contained to one connection (`worker::contain`).
    pub(super) worker_panics: Counter,
    /// Plugin panics and counters (`observe::plugin_series`).
    pub(super) plugins: PluginTable,
    /// WebSocket tunnels (`observe::tunnel_series`).
    pub(super) websocket: TunnelSeries,
}

impl WorkerMetrics {
    /// Every request series published so far (labelled).
    pub fn requests(&self) -> impl Iterator<Item = (&RequestLabels, &RequestSeries)> {
        self.requests
            .iter()
            .filter_map(|s| s.labels().map(|l| (l, s)))
    }

    /// Open downstream connections.
    pub fn connections(&self) -> u64 {
        self.connections.get()
    }

    pub fn inbound_bytes(&self) -> u64 {
        self.inbound.get()
    }

    pub fn outbound_bytes(&self) -> u64 {
        self.outbound.get()
    }

    pub fn upstream_errors(&self, kind: UpstreamErrorKind) -> u64 {
        self.upstream_errors
            .get(kind as usize)
            .map_or(0, Counter::get)
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get(reason as usize).map_or(0, Counter::get)
    }

    pub fn response_limit_exceeded(&self) -> u64 {
        self.response_limit_exceeded.get()
    }

    pub fn log_lines_dropped(&self) -> u64 {
        self.log_lines_dropped.get()
    }

    pub fn worker_panics(&self) -> u64 {
        self.worker_panics.get()
    }

    /// The counter the worker's log queue increments when it drops a line.
    pub fn log_lines_dropped_counter(&self) -> Arc<Counter> {
        self.log_lines_dropped.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_normalise() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert_eq!(Method::from_bytes(m.as_bytes()).label(), m);
        }
        for m in ["get", "PROPFIND", "", "GETX", "BREW"] {
            assert_eq!(Method::from_bytes(m.as_bytes()), Method::Other, "{m}");
        }
        assert_eq!(Method::Other.label(), "OTHER");
    }

    #[test]
    fn vocabularies_index_their_counters() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, k) in UpstreamErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        let labels: Vec<&str> = RejectReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "bad_request",
                "header_timeout",
                "body_timeout",
                "request_too_large",
                "uri_too_long",
                "headers_too_large"
            ]
        );
    }

    #[test]
    fn durations_fall_in_their_buckets() {
        let s = RequestSeries::default();
        s.observe(Duration::from_millis(5)); // le 0.005 (bounds are inclusive)
        s.observe(Duration::from_micros(5_001)); // le 0.01
        s.observe(Duration::from_secs(10)); // le 10
        s.observe(Duration::from_secs(11)); // +Inf
        let b = s.bucket_counts();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(b[10], 1);
        assert_eq!(b[11], 1);
        assert_eq!(b.iter().sum::<u64>(), 4);
        assert_eq!(s.sum_nanos(), 5_000_000 + 5_001_000 + 21_000_000_000);
    }

    #[test]
    fn every_family_has_help() {
        for f in [
            HTTP_REQUESTS_TOTAL,
            HTTP_REQUEST_DURATION_SECONDS,
            ACTIVE_CONNECTIONS,
            DATA_TRANSFERRED_BYTES_TOTAL,
            UPSTREAM_ERRORS_TOTAL,
            REQUESTS_REJECTED_TOTAL,
            RESPONSE_LIMIT_EXCEEDED_TOTAL,
            CONFIG_RELOADS_TOTAL,
            CONFIG_GENERATION,
            WORKER_CONNECTIONS,
            IO_DRIVER,
            LOG_LINES_DROPPED_TOTAL,
            WORKER_PANICS_TOTAL,
            PLUGIN_PANICS_TOTAL,
            PLUGIN_COUNTER_TOTAL,
            WEBSOCKET_CONNECTIONS_ACTIVE,
            WEBSOCKET_CONNECTIONS_TOTAL,
            WEBSOCKET_CONNECTIONS_CLOSED_TOTAL,
            WEBSOCKET_BYTES_TOTAL,
            PROCESS_CPU_SECONDS_TOTAL,
            PROCESS_RESIDENT_MEMORY_BYTES,
            PROCESS_VIRTUAL_MEMORY_BYTES,
            PROCESS_OPEN_FDS,
            PROCESS_MAX_FDS,
            PROCESS_START_TIME_SECONDS,
            PROCESS_THREADS,
        ] {
            assert!(!help(f).is_empty(), "{f}");
        }
    }
}
