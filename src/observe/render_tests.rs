//! Tests of the exposition text: parsed back with the black-box suite's strict parser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::observe::recorder::Recorder;

#[path = "../../tests/support/prom.rs"]
mod prom;

const CONTROL: ControlValues = ControlValues {
    reloads_ok: 2,
    reloads_failed: 1,
    generation: 3,
    driver: "io_uring",
};

fn two_workers() -> (Recorder, Recorder) {
    let a = Recorder::new(Arc::default());
    let b = Recorder::new(Arc::default());
    a.record_request(b"GET", Some("^/api"), 200, Duration::from_millis(3));
    a.record_request(b"GET", Some("^/api"), 200, Duration::from_millis(30));
    b.record_request(b"GET", Some("^/api"), 200, Duration::from_secs(20));
    b.record_request(b"PROPFIND", None, 404, Duration::from_millis(1));
    a.record_request(
        b"POST",
        Some("^/q\"uo\\te\n"),
        502,
        Duration::from_millis(7),
    );
    a.connection_opened();
    b.connection_opened();
    b.connection_opened();
    a.add_inbound(100);
    b.add_inbound(50);
    b.add_outbound(7);
    a.upstream_error(UpstreamErrorKind::ConnectRefused);
    b.upstream_error(UpstreamErrorKind::ConnectRefused);
    b.rejected(RejectReason::HeaderTimeout);
    a.response_limit_exceeded();
    b.log_line_dropped();
    a.worker_panic();
    b.worker_panic();
    (a, b)
}

fn rendered(a: &Recorder, b: &Recorder) -> String {
    let workers = [a.shared().clone(), b.shared().clone()];
    render(&workers, &CONTROL, &ProcessStats::read())
}

#[test]
fn sums_workers_by_labels() {
    let (a, b) = two_workers();
    let text = rendered(&a, &b);
    let s = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let api = [("method", "GET"), ("path", "^/api"), ("status_code", "200")];
    assert_eq!(s.value("http_requests_total", &api), Some(3.0));
    assert_eq!(
        s.value("http_request_duration_seconds_count", &api),
        Some(3.0)
    );
    let le = |b: &'static str| {
        let mut l = api.to_vec();
        l.push(("le", b));
        s.value("http_request_duration_seconds_bucket", &l)
    };
    assert_eq!(le("0.005"), Some(1.0));
    assert_eq!(le("0.025"), Some(1.0));
    assert_eq!(le("0.05"), Some(2.0));
    assert_eq!(le("10"), Some(2.0));
    assert_eq!(le("+Inf"), Some(3.0));
    let sum = s.value("http_request_duration_seconds_sum", &api).unwrap();
    assert!((sum - 20.033).abs() < 1e-9, "{sum}");

    let other = [
        ("method", "OTHER"),
        ("path", "unmatched"),
        ("status_code", "404"),
    ];
    assert_eq!(s.value("http_requests_total", &other), Some(1.0));
    let quoted = [
        ("method", "POST"),
        ("path", "^/q\"uo\\te\n"),
        ("status_code", "502"),
    ];
    assert_eq!(s.value("http_requests_total", &quoted), Some(1.0));
    assert_eq!(s.sum("http_requests_total", &[]), 5.0);

    assert_eq!(s.value("active_connections", &[]), Some(3.0));
    assert_eq!(
        s.value("dito_worker_connections", &[("worker", "0")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("dito_worker_connections", &[("worker", "1")]),
        Some(2.0)
    );
    let dir = |d| s.value("data_transferred_bytes_total", &[("direction", d)]);
    assert_eq!((dir("inbound"), dir("outbound")), (Some(150.0), Some(7.0)));
    let kind = |k| s.value("dito_upstream_errors_total", &[("kind", k)]);
    assert_eq!(kind("connect_refused"), Some(2.0));
    assert_eq!(kind("request_timeout"), Some(0.0));
    let reason = |r| s.value("dito_requests_rejected_total", &[("reason", r)]);
    assert_eq!(reason("header_timeout"), Some(1.0));
    assert_eq!(reason("headers_too_large"), Some(0.0));
    assert_eq!(
        s.value("dito_response_limit_exceeded_total", &[]),
        Some(1.0)
    );
    assert_eq!(s.value("dito_log_lines_dropped_total", &[]), Some(1.0));
    assert_eq!(s.kind("dito_worker_panics_total"), Some("counter"));
    assert_eq!(s.value("dito_worker_panics_total", &[]), Some(2.0));
}

#[test]
fn control_and_process_families() {
    let (a, b) = two_workers();
    let text = rendered(&a, &b);
    let s = prom::parse(&text).unwrap();
    let reloads = |r| s.value("dito_config_reloads_total", &[("result", r)]);
    assert_eq!(
        (reloads("success"), reloads("failure")),
        (Some(2.0), Some(1.0))
    );
    assert_eq!(s.value("dito_config_generation", &[]), Some(3.0));
    assert_eq!(
        s.value("dito_io_driver", &[("driver", "io_uring")]),
        Some(1.0)
    );
    assert_eq!(s.kind("dito_config_generation"), Some("gauge"));
    assert_eq!(s.kind("http_request_duration_seconds"), Some("histogram"));
    for f in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(s.value(f, &[]).is_some_and(|v| v >= 0.0), "{f}\n{text}");
    }
    for f in s.families.values() {
        assert!(
            f.help.as_deref().is_some_and(|h| !h.is_empty()),
            "{}",
            f.name
        );
    }
}

#[test]
fn empty_workers_render_valid_text() {
    let text = render(&[], &CONTROL, &ProcessStats::default());
    let s = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.kind("http_requests_total"), Some("counter"));
    assert_eq!(s.sum("http_requests_total", &[]), 0.0);
    assert_eq!(s.value("active_connections", &[]), Some(0.0));
    assert!(s.family("process_open_fds").is_none());
}

#[test]
fn output_is_sorted_and_stable() {
    let (a, b) = two_workers();
    let workers = [a.shared().clone(), b.shared().clone()];
    let p = ProcessStats::default();
    assert_eq!(
        render(&workers, &CONTROL, &p),
        render(&workers, &CONTROL, &p)
    );
}

#[test]
fn escapes_label_values_and_help() {
    let mut out = String::new();
    escape_label_into(&mut out, "a\\b\"c\nd/é");
    assert_eq!(out, "a\\\\b\\\"c\\nd/é");
    assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
}

#[test]
fn floats_use_prometheus_spellings() {
    assert_eq!(Float(0.75).to_string(), "0.75");
    assert_eq!(Float(2.0).to_string(), "2");
    assert_eq!(Float(1e-9).to_string(), "0.000000001");
    assert_eq!(Float(f64::INFINITY).to_string(), "+Inf");
    assert_eq!(Float(f64::NEG_INFINITY).to_string(), "-Inf");
    assert_eq!(Float(f64::NAN).to_string(), "NaN");
}
