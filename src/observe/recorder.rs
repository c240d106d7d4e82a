//! The worker-local writing side of a worker's metrics.
//!
//! [`Recorder`] lives in the worker's `WorkerState` (`!Sync`, one core): it is the only
//! writer of its [`WorkerMetrics`], whose `Arc` the control thread reads. It keeps the lookup
//! from a label combination to its series in a private map, so a combination already seen
//! costs two hash lookups and a few relaxed stores — no allocation, no lock; a new
//! combination allocates once and is published to readers by the series table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::{Method, RejectReason, RequestLabels, RequestSeries, WorkerMetrics};
use super::plugin_series::PluginIndex;
use super::series::{SeriesTable, CAPACITY};
use crate::error::UpstreamErrorKind;
use crate::fxhash::FxBuildHasher;
use crate::relay::tunnel::{Direction, TunnelEnd};

/// Writes one worker's metrics; see the module doc.
#[derive(Debug)]
pub struct Recorder {
    shared: Arc<WorkerMetrics>,
    index: RefCell<SeriesIndex>,
    plugins: PluginIndex,
}

impl Recorder {
    pub fn new(shared: Arc<WorkerMetrics>) -> Self {
        Recorder {
            shared,
            index: RefCell::new(SeriesIndex::default()),
            plugins: PluginIndex::default(),
        }
    }

    /// What the control thread reads.
    pub fn shared(&self) -> &Arc<WorkerMetrics> {
        &self.shared
    }

    /// Counts one answered request: `http_requests_total` and
    /// `http_request_duration_seconds`. `path`: the matched location's pattern, `None` =
    /// `unmatched`; `status`: what the client got (499 when it left first); `duration`:
    /// request head parsed → last response byte written.
    pub fn record_request(
        &self,
        method: &[u8],
        path: Option<&str>,
        status: u16,
        duration: Duration,
    ) {
        let method = Method::from_bytes(method);
        let table = &self.shared.requests;
        let at = self.index.borrow_mut().series(table, method, path, status);
        if let Some(series) = at.and_then(|i| table.get(i)) {
            series.observe(duration);
        }
    }

    /// A downstream connection was accepted (`active_connections`, `dito_worker_connections`).
    pub fn connection_opened(&self) {
        self.shared.connections.inc();
    }

    /// A downstream connection ended.
    pub fn connection_closed(&self) {
        self.shared.connections.dec();
    }

    /// This worker's open downstream connections.
    pub fn open_connections(&self) -> u64 {
        self.shared.connections.get()
    }

    /// Bytes read from a client, heads included (`data_transferred_bytes_total{direction="inbound"}`).
    pub fn add_inbound(&self, n: usize) {
        self.shared.inbound.add(n as u64);
    }

    /// Bytes written to a client, heads included (`direction="outbound"`).
    pub fn add_outbound(&self, n: usize) {
        self.shared.outbound.add(n as u64);
    }

    /// `dito_upstream_errors_total{kind}`.
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        if let Some(c) = self.shared.upstream_errors.get(kind as usize) {
            c.inc();
        }
    }

    /// `dito_requests_rejected_total{reason}`.
    pub fn rejected(&self, reason: RejectReason) {
        if let Some(c) = self.shared.rejected.get(reason as usize) {
            c.inc();
        }
    }

    /// `dito_response_limit_exceeded_total`.
    pub fn response_limit_exceeded(&self) {
        self.shared.response_limit_exceeded.inc();
    }

    /// `dito_log_lines_dropped_total`.
    pub fn log_line_dropped(&self) {
        self.shared.log_lines_dropped.inc();
    }

    /// A WebSocket tunnel opened (`dito_websocket_connections_active`, `_total`).
    pub fn tunnel_opened(&self) {
        self.shared.websocket.opened();
    }

    /// A WebSocket tunnel ended (`dito_websocket_connections_closed_total{reason}`).
    pub fn tunnel_closed(&self, end: TunnelEnd) {
        self.shared.websocket.closed(end);
    }

    /// Bytes went through a tunnel (`dito_websocket_bytes_total{direction}`).
    pub fn tunnel_moved(&self, dir: Direction, n: u64) {
        self.shared.websocket.moved(dir, n);
    }

    /// A connection task panicked and was contained (`dito_worker_panics_total`).
    pub fn worker_panic(&self) {
        self.shared.worker_panics.inc();
    }

    /// A plugin hook panicked (`dito_plugin_panics_total`).
    pub fn plugin_panic(&self, plugin: &str) {
        self.plugins.panic(&self.shared.plugins, plugin);
    }

    /// A plugin added to one of its counters (`dito_plugin_counter_total`).
    pub fn plugin_count(&self, plugin: &str, name: &str, delta: u64) {
        self.plugins.add(&self.shared.plugins, plugin, name, delta);
    }
}

/// Label combination → series index, private to the writer.
#[derive(Debug)]
struct SeriesIndex {
    /// Location pattern → path id (an index into `path_labels`).
    paths: HashMap<Box<str>, u32, FxBuildHasher>,
    /// By path id; id 0 is `unmatched`.
    path_labels: Vec<Option<Arc<str>>>,
    series: HashMap<(u32, Method, u16), usize, FxBuildHasher>,
    /// The table filled up and that was logged.
    full_warned: bool,
}

impl Default for SeriesIndex {
    fn default() -> Self {
        SeriesIndex {
            paths: HashMap::default(),
            path_labels: vec![None],
            series: HashMap::default(),
            full_warned: false,
        }
    }
}

impl SeriesIndex {
    /// The index of the series of these labels, added to `table` when new; `None` when the
    /// table is full (the sample is dropped, and one WARN says so).
    fn series(
        &mut self,
        table: &SeriesTable<RequestSeries>,
        method: Method,
        path: Option<&str>,
        status: u16,
    ) -> Option<usize> {
        let path_id = match path {
            None => 0,
            Some(p) => match self.paths.get(p) {
                Some(id) => *id,
                None => {
                    let id = u32::try_from(self.path_labels.len()).ok()?;
                    self.paths.insert(p.into(), id);
                    self.path_labels.push(Some(Arc::from(p)));
                    id
                }
            },
        };
        let key = (path_id, method, status);
        if let Some(at) = self.series.get(&key) {
            return Some(*at);
        }
        let labels = RequestLabels {
            method,
            path: self.path_labels.get(path_id as usize).cloned().flatten(),
            status,
        };
        match table.append(|s| s.set_labels(labels)) {
            Some(at) => {
                self.series.insert(key, at);
                Some(at)
            }
            None => {
                if !self.full_warned {
                    self.full_warned = true;
                    tracing::warn!(
                        series = CAPACITY,
                        "request metrics: too many label combinations on this worker; new ones are not counted"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn totals(m: &WorkerMetrics) -> Vec<(String, String, u16, u64)> {
        m.requests()
            .map(|(l, s)| {
                (
                    l.method.label().to_owned(),
                    l.path_label().to_owned(),
                    l.status,
                    s.bucket_counts().iter().sum(),
                )
            })
            .collect()
    }

    #[test]
    fn same_labels_share_one_series() {
        let r = Recorder::new(Arc::default());
        let ms = Duration::from_millis(1);
        r.record_request(b"GET", Some("^/api"), 200, ms);
        r.record_request(b"GET", Some("^/api"), 200, ms);
        r.record_request(b"get", Some("^/api"), 200, ms);
        r.record_request(b"GET", None, 404, ms);
        r.record_request(b"GET", Some("^/api"), 502, ms);
        r.record_request(b"BREW", Some("^/api"), 200, ms);
        assert_eq!(
            totals(r.shared()),
            [
                ("GET".into(), "^/api".into(), 200, 2),
                ("OTHER".into(), "^/api".into(), 200, 2),
                ("GET".into(), "unmatched".into(), 404, 1),
                ("GET".into(), "^/api".into(), 502, 1),
            ]
        );
    }

    #[test]
    fn simple_counters() {
        let r = Recorder::new(Arc::default());
        r.connection_opened();
        r.connection_opened();
        r.connection_closed();
        r.add_inbound(10);
        r.add_outbound(20);
        r.add_outbound(5);
        r.upstream_error(UpstreamErrorKind::Dns);
        r.rejected(RejectReason::UriTooLong);
        r.response_limit_exceeded();
        r.log_line_dropped();
        let m = r.shared();
        assert_eq!(r.open_connections(), 1);
        assert_eq!(m.connections(), 1);
        assert_eq!((m.inbound_bytes(), m.outbound_bytes()), (10, 25));
        assert_eq!(m.upstream_errors(UpstreamErrorKind::Dns), 1);
        assert_eq!(m.upstream_errors(UpstreamErrorKind::Reset), 0);
        assert_eq!(m.rejected(RejectReason::UriTooLong), 1);
        assert_eq!(m.rejected(RejectReason::BadRequest), 0);
        assert_eq!(m.response_limit_exceeded(), 1);
        assert_eq!(m.log_lines_dropped(), 1);
    }

    /// The control thread reads while the worker adds label combinations.
    #[test]
    fn reader_sees_whole_series_while_writer_adds() {
        let r = Recorder::new(Arc::default());
        let shared = r.shared().clone();
        let reader = std::thread::spawn(move || {
            let mut seen = 0usize;
            while seen < 500 {
                let now: Vec<_> = shared.requests().collect();
                if now.len() < seen {
                    return Err("series disappeared".to_owned());
                }
                for (l, s) in &now {
                    if l.path.is_none() || s.bucket_counts().iter().sum::<u64>() > 2 {
                        return Err(format!("inconsistent series {l:?}"));
                    }
                }
                seen = now.len();
            }
            Ok(seen)
        });
        for i in 0..500u16 {
            let path = format!("^/p{}", i % 50);
            r.record_request(b"GET", Some(&path), 100 + i, Duration::ZERO);
            r.record_request(b"GET", Some(&path), 100 + i, Duration::ZERO);
        }
        assert_eq!(reader.join().expect("reader"), Ok(500));
    }
}
