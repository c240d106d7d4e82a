//! The Prometheus text exposition format 0.0.4 of every metric (spec §10), rendered by hand.
//!
//! Runs on the control thread when `/metrics` is scraped: it reads each worker's
//! [`WorkerMetrics`] with relaxed loads, sums them by label values (`dito_worker_connections`
//! stays per worker), and adds the control thread's values and the `process_*` metrics.
//! Every family gets `# HELP` and `# TYPE`; label values are escaped; the output is sorted so
//! two scrapes of the same state are byte-identical.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::metrics::{
    self as m, Method, RejectReason, WorkerMetrics, BUCKETS, DURATION_BUCKETS, INBOUND, OUTBOUND,
};
use super::plugin_series;
use super::process::ProcessStats;
use super::tunnel_series;
use crate::error::UpstreamErrorKind;

/// What the control thread contributes to a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlValues {
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub generation: u64,
    /// `io_uring` or `epoll`.
    pub driver: &'static str,
}

/// The whole scrape body.
pub fn render(
    workers: &[Arc<WorkerMetrics>],
    control: &ControlValues,
    process: &ProcessStats,
) -> String {
    let mut out = Exposition::default();
    render_requests(&mut out, workers);

    let sum =
        |f: fn(&WorkerMetrics) -> u64| workers.iter().fold(0u64, |acc, w| acc.wrapping_add(f(w)));
    out.family(m::ACTIVE_CONNECTIONS, "gauge");
    out.sample(m::ACTIVE_CONNECTIONS, &[], sum(WorkerMetrics::connections));
    out.family(m::DATA_TRANSFERRED_BYTES_TOTAL, "counter");
    out.sample(
        m::DATA_TRANSFERRED_BYTES_TOTAL,
        &[("direction", INBOUND)],
        sum(WorkerMetrics::inbound_bytes),
    );
    out.sample(
        m::DATA_TRANSFERRED_BYTES_TOTAL,
        &[("direction", OUTBOUND)],
        sum(WorkerMetrics::outbound_bytes),
    );
    out.family(m::UPSTREAM_ERRORS_TOTAL, "counter");
    for kind in UpstreamErrorKind::ALL {
        let n = workers
            .iter()
            .fold(0u64, |acc, w| acc.wrapping_add(w.upstream_errors(kind)));
        out.sample(m::UPSTREAM_ERRORS_TOTAL, &[("kind", kind.as_str())], n);
    }
    out.family(m::REQUESTS_REJECTED_TOTAL, "counter");
    for reason in RejectReason::ALL {
        let n = workers
            .iter()
            .fold(0u64, |acc, w| acc.wrapping_add(w.rejected(reason)));
        out.sample(m::REQUESTS_REJECTED_TOTAL, &[("reason", reason.label())], n);
    }
    out.family(m::RESPONSE_LIMIT_EXCEEDED_TOTAL, "counter");
    out.sample(
        m::RESPONSE_LIMIT_EXCEEDED_TOTAL,
        &[],
        sum(WorkerMetrics::response_limit_exceeded),
    );
    out.family(m::WORKER_CONNECTIONS, "gauge");
    for (id, w) in workers.iter().enumerate() {
        out.sample(
            m::WORKER_CONNECTIONS,
            &[("worker", &id.to_string())],
            w.connections(),
        );
    }
    out.family(m::LOG_LINES_DROPPED_TOTAL, "counter");
    out.sample(
        m::LOG_LINES_DROPPED_TOTAL,
        &[],
        sum(WorkerMetrics::log_lines_dropped),
    );
    out.family(m::WORKER_PANICS_TOTAL, "counter");
    out.sample(
        m::WORKER_PANICS_TOTAL,
        &[],
        sum(WorkerMetrics::worker_panics),
    );

    tunnel_series::render(&mut out, workers);
    render_plugins(&mut out, workers);
    render_control(&mut out, control);
    render_process(&mut out, process);
    out.0
}

/// Plugin panics and counters, summed over workers (families only when a plugin counted).
fn render_plugins(out: &mut Exposition, workers: &[Arc<WorkerMetrics>]) {
    let tables: Vec<_> = workers.iter().map(|w| &w.plugins).collect();
    let (panics, counters) = plugin_series::merged(&tables);
    if !panics.is_empty() {
        out.family(m::PLUGIN_PANICS_TOTAL, "counter");
        for (plugin, n) in &panics {
            out.sample(m::PLUGIN_PANICS_TOTAL, &[("plugin", plugin)], n);
        }
    }
    if !counters.is_empty() {
        out.family(m::PLUGIN_COUNTER_TOTAL, "counter");
        for ((plugin, name), n) in &counters {
            out.sample(
                m::PLUGIN_COUNTER_TOTAL,
                &[("plugin", plugin), ("name", name)],
                n,
            );
        }
    }
}

/// Per label combination, summed over workers: per-bucket counts and the sum in nanoseconds.
type Merged<'a> = BTreeMap<(&'a str, Method, u16), ([u64; BUCKETS], u64)>;

fn render_requests(out: &mut Exposition, workers: &[Arc<WorkerMetrics>]) {
    let mut merged: Merged<'_> = BTreeMap::new();
    for w in workers {
        for (labels, series) in w.requests() {
            let key = (labels.path_label(), labels.method, labels.status);
            let (buckets, sum) = merged.entry(key).or_insert(([0; BUCKETS], 0));
            for (total, n) in buckets.iter_mut().zip(series.bucket_counts()) {
                *total = total.wrapping_add(n);
            }
            *sum = sum.wrapping_add(series.sum_nanos());
        }
    }

    out.family(m::HTTP_REQUESTS_TOTAL, "counter");
    for ((path, method, status), (buckets, _)) in &merged {
        let status = status.to_string();
        let labels = [
            ("method", method.label()),
            ("path", *path),
            ("status_code", status.as_str()),
        ];
        out.sample(m::HTTP_REQUESTS_TOTAL, &labels, buckets.iter().sum::<u64>());
    }

    let name = m::HTTP_REQUEST_DURATION_SECONDS;
    out.family(name, "histogram");
    let bucket = format!("{name}_bucket");
    let sum_name = format!("{name}_sum");
    let count_name = format!("{name}_count");
    for ((path, method, status), (buckets, sum_nanos)) in &merged {
        let status = status.to_string();
        let mut labels = vec![
            ("method", method.label()),
            ("path", *path),
            ("status_code", status.as_str()),
        ];
        let mut cumulative = 0u64;
        let bounds = DURATION_BUCKETS.iter().map(|(le, _)| *le).chain(["+Inf"]);
        for (le, n) in bounds.zip(buckets) {
            cumulative = cumulative.wrapping_add(*n);
            labels.push(("le", le));
            out.sample(&bucket, &labels, cumulative);
            labels.pop();
        }
        out.sample(&sum_name, &labels, Float(*sum_nanos as f64 / 1e9));
        out.sample(&count_name, &labels, cumulative);
    }
}

fn render_control(out: &mut Exposition, c: &ControlValues) {
    out.family(m::CONFIG_RELOADS_TOTAL, "counter");
    out.sample(
        m::CONFIG_RELOADS_TOTAL,
        &[("result", "success")],
        c.reloads_ok,
    );
    out.sample(
        m::CONFIG_RELOADS_TOTAL,
        &[("result", "failure")],
        c.reloads_failed,
    );
    out.family(m::CONFIG_GENERATION, "gauge");
    out.sample(m::CONFIG_GENERATION, &[], c.generation);
    out.family(m::IO_DRIVER, "gauge");
    out.sample(m::IO_DRIVER, &[("driver", c.driver)], 1u64);
}

fn render_process(out: &mut Exposition, p: &ProcessStats) {
    let floats = [
        (m::PROCESS_CPU_SECONDS_TOTAL, "counter", p.cpu_seconds),
        (m::PROCESS_START_TIME_SECONDS, "gauge", p.start_time_seconds),
    ];
    for (name, kind, value) in floats {
        if let Some(v) = value {
            out.family(name, kind);
            out.sample(name, &[], Float(v));
        }
    }
    let integers = [
        (m::PROCESS_RESIDENT_MEMORY_BYTES, p.resident_bytes),
        (m::PROCESS_VIRTUAL_MEMORY_BYTES, p.virtual_bytes),
        (m::PROCESS_OPEN_FDS, p.open_fds),
        (m::PROCESS_MAX_FDS, p.max_fds),
        (m::PROCESS_THREADS, p.threads),
    ];
    for (name, value) in integers {
        if let Some(v) = value {
            out.family(name, "gauge");
            out.sample(name, &[], v);
        }
    }
}

/// A sample value written the way Prometheus parses it.
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            // Rust never writes an exponent here; Prometheus accepts plain decimals.
            v => write!(f, "{v}"),
        }
    }
}

/// The text being built.
#[derive(Default)]
pub(super) struct Exposition(String);

impl Exposition {
    pub(super) fn family(&mut self, name: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(m::help(name)));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    pub(super) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(k);
                self.0.push_str("=\"");
                escape_label_into(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Label values escape `\`, `"` and line feeds.
pub fn escape_label_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help texts escape `\` and line feeds.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
