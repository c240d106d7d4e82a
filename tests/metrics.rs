//! Metrics (spec §10), black-box: the real binary behind `dito-echo`, scraped over HTTP and
//! read with the strict Prometheus parser of `support::prom`.
//!
//! A request is counted after its last response byte is written, so a scrape on another
//! connection may still miss it: such checks poll the scrape (bounded) until the counter
//! reaches its expected value, then assert the exact value. A scrape on the same keep-alive
//! connection is exact at once: the worker counts the previous request before it reads the
//! next head.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reload_common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use reload_common::{cfg_path, RELOAD_LIMIT};
use support::client::{get, request, Client};
use support::prom::{parse, Scrape};
use support::{config, io_driver, Dito, Echo};

const REQS: &str = "http_requests_total";
const DUR_COUNT: &str = "http_request_duration_seconds_count";
const SCRAPE_LIMIT: Duration = Duration::from_secs(10);
const SCRAPE_REQ: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n";

/// Metrics on, `top` keys, and one location per `(pattern, target_url)`.
fn yaml(top: &str, locs: &[(&str, String)]) -> String {
    let locs: String = locs
        .iter()
        .map(|(p, t)| format!("  - path: '{p}'\n    target_url: '{t}'\n"))
        .collect();
    config(&format!(
        "{top}metrics:\n  enabled: true\nlocations:\n{locs}"
    ))
}

/// Metrics on, `^/api` → the echo upstream (so `/api/bytes/5` → `/bytes/5`).
fn api_dito(e: &Echo) -> Dito {
    Dito::start(&yaml("", &[("^/api", format!("http://{}", e.addr))]))
}

fn parse_body(resp: &support::client::Resp) -> Scrape {
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    parse(&resp.body_str()).unwrap_or_else(|e| panic!("{e}\n{}", resp.body_str()))
}

/// One scrape on a new connection.
fn scrape(addr: SocketAddr) -> Scrape {
    parse_body(&request(addr, SCRAPE_REQ))
}

/// One scrape on an open keep-alive connection.
fn scrape_on(c: &mut Client) -> Scrape {
    c.send(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    parse_body(&c.read_response())
}

/// Scrapes until `ok` holds (at most [`SCRAPE_LIMIT`]); panics naming `what` otherwise.
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + SCRAPE_LIMIT;
    loop {
        let s = scrape(addr);
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "never reached: {what}; last: {s:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn val(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.sum(name, labels)
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn requests_count_once_by_method_location_and_status() {
    const N: usize = 7;
    let e = Echo::start();
    let d = api_dito(&e);
    let ok = [("method", "GET"), ("path", "^/api"), ("status_code", "200")];
    let mut c = Client::connect(d.addr);
    let before = scrape_on(&mut c);
    for _ in 0..N {
        c.send(b"GET /api/bytes/5 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(c.read_response().status, 200);
    }
    let after = scrape_on(&mut c);
    assert_eq!(val(&after, REQS, &ok) - val(&before, REQS, &ok), N as f64);
    assert_eq!(
        val(&after, DUR_COUNT, &ok) - val(&before, DUR_COUNT, &ok),
        N as f64
    );
    assert!(
        val(&after, "http_request_duration_seconds_sum", &ok) > 0.0,
        "{after:#?}"
    );
    // Only those N: the two scrapes themselves are not counted, on any label.
    assert_eq!(val(&after, REQS, &[]) - val(&before, REQS, &[]), N as f64);
    let again = scrape_on(&mut c);
    assert_eq!(val(&again, REQS, &[]), val(&after, REQS, &[]));

    // Spread over both workers: the scrape sums them.
    for _ in 0..N {
        assert_eq!(get(d.addr, "/api/bytes/3").status, 200);
    }
    let want = val(&again, REQS, &ok) + N as f64;
    let s = scrape_until(d.addr, "N more on new connections", |s| {
        val(s, REQS, &ok) >= want
    });
    assert_eq!(val(&s, REQS, &ok), want);
    assert_eq!(val(&s, DUR_COUNT, &ok), want);
}

#[test]
fn unmatched_paths_and_unknown_methods_use_bounded_labels() {
    let e = Echo::start();
    let d = api_dito(&e);
    let mut c = Client::connect(d.addr);
    let raw: [&[u8]; 5] = [
        b"GET /nowhere/unique-xyz-123 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /api/unique-abc-456?q=unique-q-789 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"FOO /nowhere/unique-def-321 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /unique-ghi-654 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"get /nowhere HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for r in raw {
        c.send(r);
        assert_eq!(c.read_response().status, 404);
    }
    let s = scrape_on(&mut c);
    let get404 = |path| [("method", "GET"), ("path", path), ("status_code", "404")];
    assert_eq!(s.value(REQS, &get404("unmatched")), Some(2.0), "{s:#?}");
    // The echo upstream's own 404 for a path it does not know, under the location.
    assert_eq!(s.value(REQS, &get404("^/api")), Some(1.0), "{s:#?}");
    // `FOO`, and a lower-case `get` (methods are case-sensitive): OTHER.
    let other = [
        ("method", "OTHER"),
        ("path", "unmatched"),
        ("status_code", "404"),
    ];
    assert_eq!(s.value(REQS, &other), Some(2.0), "{s:#?}");
    assert_eq!(val(&s, REQS, &[]), 5.0, "{s:#?}");
    for f in s.families.values() {
        for sample in &f.samples {
            for (k, v) in &sample.labels {
                assert!(
                    !v.contains("unique-"),
                    "raw path in {}{{{k}={v:?}}}",
                    sample.name
                );
                if k == "path" {
                    assert!(v == "^/api" || v == "unmatched", "path label {v:?}");
                }
            }
        }
    }
}

#[test]
fn active_connections_follow_open_keep_alive_connections() {
    let e = Echo::start();
    let d = api_dito(&e);
    let mut idle: Vec<Client> = (0..3).map(|_| Client::connect(d.addr)).collect();
    for c in &mut idle {
        c.send(b"GET /api/bytes/1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(c.read_response().status, 200);
    }
    // Three idle connections plus the scrape's own.
    let s = scrape(d.addr);
    let active = val(&s, "active_connections", &[]);
    assert!(
        active >= 4.0,
        "active_connections {active} with 3 idle open"
    );
    assert_eq!(s.kind("active_connections"), Some("gauge"));
    assert_eq!(val(&s, "dito_worker_connections", &[]), active, "{s:#?}");
    assert_eq!(
        s.samples("dito_worker_connections").count(),
        2,
        "one per worker"
    );
    drop(idle);
    let s = scrape_until(
        d.addr,
        "active_connections back to the scraper alone",
        |s| val(s, "active_connections", &[]) <= 1.0,
    );
    assert_eq!(val(&s, "active_connections", &[]), 1.0);
}

#[test]
fn transferred_bytes_count_what_clients_send_and_receive() {
    let e = Echo::start();
    let d = api_dito(&e);
    let before = request(d.addr, SCRAPE_REQ);
    let b = parse_body(&before);
    // Upper bounds: the payloads plus the scrapes' own bytes (heads under 1 KiB).
    let mut scrapes_in = SCRAPE_REQ.len();
    let mut scrapes_out = before.body.len() + 1024;

    let body = vec![b'x'; 100_000];
    let mut raw = format!(
        "POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let mut c = Client::connect(d.addr);
    c.send(&raw);
    let (got, _) = c.read_until_close();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &got[..got.len().min(200)]
    );
    let raw2: &[u8] = b"GET /api/bytes/200000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let mut c = Client::connect(d.addr);
    c.send(raw2);
    let (got2, _) = c.read_until_close();
    assert!(got2.len() > 200_000, "{}", got2.len());
    let (sent, received) = (raw.len() + raw2.len(), got.len() + got2.len());

    let dir = |s: &Scrape, d| val(s, "data_transferred_bytes_total", &[("direction", d)]);
    let deadline = Instant::now() + SCRAPE_LIMIT;
    let (inb, outb) = loop {
        let resp = request(d.addr, SCRAPE_REQ);
        let s = parse_body(&resp);
        scrapes_in += SCRAPE_REQ.len();
        scrapes_out += resp.body.len() + 1024;
        let (i, o) = (
            dir(&s, "inbound") - dir(&b, "inbound"),
            dir(&s, "outbound") - dir(&b, "outbound"),
        );
        if (i >= sent as f64 && o >= received as f64) || Instant::now() > deadline {
            break (i, o);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        inb >= sent as f64,
        "inbound grew {inb}, clients sent at least {sent}"
    );
    assert!(
        outb >= received as f64,
        "outbound grew {outb}, clients received {received}"
    );
    // Not counted twice: beyond the payloads, only the scrapes' own bytes.
    let most = sent + scrapes_in;
    assert!(
        inb <= most as f64,
        "inbound grew {inb}, at most {most} read"
    );
    let most = received + scrapes_out;
    assert!(
        outb <= most as f64,
        "outbound grew {outb}, at most {most} written"
    );
}

#[test]
fn process_metrics_and_the_exposition_format() {
    let e = Echo::start();
    let d = api_dito(&e);
    // Some series in the histogram first, so its checks have buckets to check.
    for (p, code) in [("/api/bytes/1", 200), ("/api/status/503", 503), ("/x", 404)] {
        assert_eq!(get(d.addr, p).status, code, "{p}");
    }
    let resp = request(d.addr, SCRAPE_REQ);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // `parse` already rejected a sample without TYPE, non-cumulative buckets and a `+Inf`
    // bucket that differs from `_count`.
    parse_body(&resp);
    let s = scrape_until(d.addr, "three requests", |s| val(s, REQS, &[]) >= 3.0);
    assert_eq!(val(&s, REQS, &[]), 3.0);
    for (name, kind) in [
        (REQS, "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("active_connections", "gauge"),
        ("data_transferred_bytes_total", "counter"),
        ("dito_upstream_errors_total", "counter"),
        ("dito_requests_rejected_total", "counter"),
        ("dito_response_limit_exceeded_total", "counter"),
        ("dito_config_reloads_total", "counter"),
        ("dito_config_generation", "gauge"),
        ("dito_worker_connections", "gauge"),
        ("dito_io_driver", "gauge"),
        ("dito_log_lines_dropped_total", "counter"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(s.kind(name), Some(kind), "{name}");
        assert!(s.family(name).unwrap().help.is_some(), "{name} has no HELP");
    }
    assert!(s.value("process_cpu_seconds_total", &[]).unwrap() >= 0.0);
    assert!(s.value("process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(s.value("process_open_fds", &[]).unwrap() > 0.0);
    // Every request series has the 12 buckets of spec §10 (.005 … 10, +Inf).
    let series = s.samples(REQS).count();
    let buckets = s.samples("http_request_duration_seconds_bucket").count();
    assert_eq!(buckets, series * 12, "{s:#?}");
    assert!(s.samples("http_request_duration_seconds_bucket").any(|b| b
        .labels
        .get("le")
        .map(String::as_str)
        == Some("0.005")));
}

#[test]
fn a_client_leaving_mid_response_counts_as_499() {
    let e = Echo::start();
    let d = api_dito(&e);
    {
        let mut c = TcpStream::connect(d.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        c.write_all(b"GET /api/bytes/67108864 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 1024];
        let n = c.read(&mut first).unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    }
    let gone = [("method", "GET"), ("path", "^/api"), ("status_code", "499")];
    let s = scrape_until(d.addr, "a 499", |s| val(s, REQS, &[]) >= 1.0);
    assert_eq!(s.value(REQS, &gone), Some(1.0), "{s:#?}");
    assert_eq!(val(&s, REQS, &[]), 1.0, "counted once, as 499 only: {s:#?}");
    assert_eq!(s.value(DUR_COUNT, &gone), Some(1.0));
}

#[test]
fn rejected_heads_count_by_reason_and_status() {
    let e = Echo::start();
    let d = api_dito(&e);
    let r = request(d.addr, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    assert_eq!(r.status, 400);
    let bad = [("reason", "bad_request")];
    let s = scrape_until(d.addr, "the 400 counted", |s| {
        val(s, "dito_requests_rejected_total", &bad) >= 1.0 && val(s, REQS, &[]) >= 1.0
    });
    assert_eq!(s.value("dito_requests_rejected_total", &bad), Some(1.0));
    let got = [
        ("method", "GET"),
        ("path", "unmatched"),
        ("status_code", "400"),
    ];
    assert_eq!(s.value(REQS, &got), Some(1.0), "{s:#?}");
    assert_eq!(val(&s, REQS, &[]), 1.0);

    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
    assert_eq!(request(d.addr, long.as_bytes()).status, 414);
    let uri = [("reason", "uri_too_long")];
    let s = scrape_until(d.addr, "the 414 counted", |s| {
        val(s, "dito_requests_rejected_total", &uri) >= 1.0
    });
    assert_eq!(s.value("dito_requests_rejected_total", &uri), Some(1.0));
    assert_eq!(s.value("dito_requests_rejected_total", &bad), Some(1.0));
    assert_eq!(val(&s, "dito_requests_rejected_total", &[]), 2.0, "{s:#?}");
}

#[test]
fn a_refused_upstream_counts_a_connect_refused_error() {
    let port = closed_port();
    let d = Dito::start(&yaml("", &[("^/down", format!("http://127.0.0.1:{port}"))]));
    let refused = [("kind", "connect_refused")];
    let before = scrape(d.addr);
    assert_eq!(
        before.value("dito_upstream_errors_total", &refused),
        Some(0.0)
    );
    assert_eq!(get(d.addr, "/down/x").status, 502);
    let s = scrape_until(d.addr, "the 502 counted", |s| {
        val(s, "dito_upstream_errors_total", &refused) >= 1.0 && val(s, REQS, &[]) >= 1.0
    });
    assert_eq!(s.value("dito_upstream_errors_total", &refused), Some(1.0));
    assert_eq!(val(&s, "dito_upstream_errors_total", &[]), 1.0, "{s:#?}");
    let bad_gateway = [
        ("method", "GET"),
        ("path", "^/down"),
        ("status_code", "502"),
    ];
    assert_eq!(s.value(REQS, &bad_gateway), Some(1.0), "{s:#?}");
}

#[test]
fn health_and_metrics_requests_are_not_counted() {
    let e = Echo::start();
    let d = api_dito(&e);
    let mut c = Client::connect(d.addr);
    for _ in 0..5 {
        for p in ["/healthz", "/readyz"] {
            c.send(format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            assert_eq!(c.read_response().status, 200, "{p}");
        }
        scrape_on(&mut c);
    }
    let s = scrape_on(&mut c);
    assert_eq!(val(&s, REQS, &[]), 0.0, "{s:#?}");
    assert_eq!(s.samples(REQS).count(), 0, "{s:#?}");
}

#[test]
fn disabled_metrics_leave_the_path_to_routing() {
    let e = Echo::start();
    let on = yaml("", &[("^/metrics", format!("http://{}/echo", e.addr))]);
    let off = on.replace("enabled: true", "enabled: false");
    assert_ne!(on, off);
    let d = Dito::start(&off);
    let r = get(d.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().contains("target: /echo"),
        "not proxied: {}",
        r.body_str()
    );
    assert!(!r.body_str().contains("# TYPE"));
    drop(d);

    let d = Dito::start(&off.replace("^/metrics", "^/api"));
    let r = get(d.addr, "/metrics");
    assert_eq!(r.status, 404);
    assert!(!r.body_str().contains("# TYPE"), "{}", r.body_str());
    drop(d);

    // The same config with metrics on: Dito answers before routing.
    let d = Dito::start(&on);
    assert!(scrape(d.addr).family(REQS).is_some());
}

#[test]
fn reload_and_io_driver_gauges() {
    let e = Echo::start();
    let top = "hot_reload: false\n";
    let d = Dito::start(&yaml(top, &[("^/a", format!("http://{}", e.addr))]));
    let driver = match io_driver().as_str() {
        "uring" => "io_uring",
        other => other,
    }
    .to_owned();
    let s = scrape(d.addr);
    assert_eq!(
        s.value("dito_io_driver", &[("driver", &driver)]),
        Some(1.0),
        "{s:#?}"
    );
    assert_eq!(s.samples("dito_io_driver").count(), 1);
    assert_eq!(s.value("dito_config_generation", &[]), Some(1.0));
    let ok = [("result", "success")];
    let failed = [("result", "failure")];
    assert_eq!(s.value("dito_config_reloads_total", &ok), Some(0.0));
    assert_eq!(s.value("dito_config_reloads_total", &failed), Some(0.0));

    let next = yaml(
        top,
        &[
            ("^/a", format!("http://{}", e.addr)),
            ("^/b", format!("http://{}", e.addr)),
        ],
    );
    std::fs::write(cfg_path(&d), next).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("config reloaded", RELOAD_LIMIT),
        "no reload line; output:\n{}",
        d.output()
    );
    let s = scrape(d.addr);
    assert_eq!(s.value("dito_config_generation", &[]), Some(2.0), "{s:#?}");
    assert_eq!(s.value("dito_config_reloads_total", &ok), Some(1.0));
    assert_eq!(s.value("dito_config_reloads_total", &failed), Some(0.0));
    assert_eq!(s.value("dito_io_driver", &[("driver", &driver)]), Some(1.0));

    // A rejected reload counts as a failure and keeps the generation.
    std::fs::write(cfg_path(&d), "port: [\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("still serving the running config", RELOAD_LIMIT),
        "no rejection line; output:\n{}",
        d.output()
    );
    let s = scrape(d.addr);
    assert_eq!(s.value("dito_config_generation", &[]), Some(2.0));
    assert_eq!(s.value("dito_config_reloads_total", &ok), Some(1.0));
    assert_eq!(s.value("dito_config_reloads_total", &failed), Some(1.0));
}
