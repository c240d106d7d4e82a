//! The HTTP/1.1 front door as a client sees it (spec §3, §6, §7, §12): Dito's own answers,
//! every 400 of spec §7, the 414/431 limits at their exact boundaries, timeouts, keep-alive,
//! pipelining, HTTP/1.0, Expect, and the io driver choice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::client::{get, request, Client, Ending};
use support::{config, Dito};

fn dito() -> Dito {
    Dito::start(&config(""))
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn unmatched_request_gets_the_404_envelope() {
    let d = dito();
    let r = get(d.addr, "/nowhere?x=1");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let id = r.header("x-request-id").unwrap().to_owned();
    assert!(is_hex32(&id), "generated id {id:?}");
    let body = r.body_str();
    let prefix = format!(
        r#"{{"error":{{"code":404,"message":"Not Found"}},"request_id":"{id}","timestamp":"#
    );
    assert!(body.starts_with(&prefix), "{body}");
    let ts: u64 = body[prefix.len()..body.len() - 1].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts.abs_diff(now) < 60, "timestamp {ts} vs now {now}");
}

#[test]
fn client_request_id_is_kept_when_valid_and_replaced_when_not() {
    let d = dito();
    let r = request(
        d.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: my-id.42\r\n\r\n",
    );
    assert_eq!(r.header("x-request-id"), Some("my-id.42"));
    assert!(r.body_str().contains(r#""request_id":"my-id.42""#));
    let long = "a".repeat(129);
    let r = request(
        d.addr,
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: {long}\r\n\r\n").as_bytes(),
    );
    assert!(is_hex32(r.header("x-request-id").unwrap()));
}

/// Every framing ambiguity and syntax error of spec §7's 400 row.
const BAD_REQUESTS: &[(&str, &[u8])] = &[
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    ),
    (
        "differing CL",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ),
    (
        "malformed CL",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc",
    ),
    (
        "negative CL",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    ),
    (
        "TE not chunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    ),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    ),
    (
        "TE in HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "bad chunk line",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    ),
    (
        "obs-fold",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",
    ),
    (
        "NUL in value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
    ),
    (
        "CR in value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
    ),
    (
        "space before colon",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
    ),
    ("missing Host", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"),
    (
        "duplicate Host",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ),
    ("invalid method", b"G{T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("invalid version", b"GET / HTTP/1.7\r\nHost: a\r\n\r\n"),
    ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n"),
];

/// A connection that opens with the HTTP/2 preface is HTTP/2 with prior knowledge (h2c, issue
/// 9): Dito answers with its SETTINGS frame, not an HTTP/1.1 400.
#[test]
fn http2_preface_on_a_fresh_connection_is_answered_with_http2_settings() {
    use std::io::{Read, Write};
    let d = dito();
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut frame = [0u8; 9];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 0x4, "not a SETTINGS frame: {frame:?}");
    assert_eq!(
        &frame[5..9],
        &[0, 0, 0, 0],
        "SETTINGS on a stream: {frame:?}"
    );
}

/// After an HTTP/1.1 request the preface is just a bad request line.
#[test]
fn http2_preface_after_an_http1_request_gets_400_and_a_close() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn every_bad_request_gets_400_and_a_close() {
    let d = dito();
    for (what, raw) in BAD_REQUESTS {
        let mut c = Client::connect(d.addr);
        c.send(raw);
        // A request pipelined behind the bad one must never be answered.
        c.send(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 400, "{what}");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(r.body_str().contains(r#""code":400"#), "{what}");
        assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed, "{what}");
    }
}

#[test]
fn bad_chunked_body_arriving_late_gets_400() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    // The head is fine and the body trickles in: Dito reads it before answering.
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"cdeXX\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn body_timeout_gets_408() {
    let d = Dito::start(&config("request_limits:\n  body_idle_timeout: 1s\n"));
    let mut c = Client::connect(d.addr);
    let t = Instant::now();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.read_response();
    assert_eq!(r.status, 408);
    assert!(t.elapsed() >= Duration::from_millis(950));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}

fn limits_config() -> String {
    config(
        "request_limits:\n  max_request_line_bytes: 100\n  max_header_bytes: 200\n  max_headers: 5\n",
    )
}

#[test]
fn request_line_limit_414_one_byte_over_only() {
    let d = Dito::start(&limits_config());
    // "GET " + path + " HTTP/1.1" is exactly 100 bytes.
    let path = format!("/{}", "p".repeat(100 - 13 - 1));
    let at = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(request(d.addr, at.as_bytes()).status, 404);
    let over = format!("GET {path}q HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut c = Client::connect(d.addr);
    c.send(over.as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 414);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn header_limits_431_one_byte_over_only() {
    let d = Dito::start(&limits_config());
    // Header section = "Host: a\r\n" (9) + "X: vvv…\r\n"; exactly 200 bytes passes.
    let field = |len: usize| format!("X: {}\r\n", "v".repeat(len - 5));
    let at = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", field(200 - 9));
    assert_eq!(request(d.addr, at.as_bytes()).status, 404);
    let over = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", field(201 - 9));
    let r = request(d.addr, over.as_bytes());
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));

    let five = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    assert_eq!(request(d.addr, five.as_bytes()).status, 404);
    let six = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n";
    assert_eq!(request(d.addr, six.as_bytes()).status, 431);
}

#[test]
fn slow_header_gets_408_while_others_are_served() {
    let d = Dito::start(&config("request_limits:\n  header_read_timeout: 1s\n"));
    let started = Instant::now();
    let mut slow = Client::connect(d.addr);
    slow.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    // A second client is served at once while the first one dawdles.
    let r = get(d.addr, "/other");
    assert_eq!(r.status, 404);
    assert!(started.elapsed() < Duration::from_millis(900));
    let r = slow.read_response();
    let waited = started.elapsed();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(waited >= Duration::from_millis(950), "408 after {waited:?}");
    assert!(waited < Duration::from_secs(5), "408 after {waited:?}");
    assert_eq!(slow.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn idle_keep_alive_connection_closes_silently() {
    let d = Dito::start(&config("request_limits:\n  keep_alive_timeout: 1s\n"));
    let mut c = Client::connect(d.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.read_response().status, 404);
    let t = Instant::now();
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
    assert!(t.elapsed() >= Duration::from_millis(900));
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    c.send(b"GET /1 HTTP/1.1\r\nHost: a\r\nX-Request-ID: one\r\n\r\n");
    assert_eq!(c.read_response().header("x-request-id"), Some("one"));
    c.send(
        b"GET /2 HTTP/1.1\r\nHost: a\r\nX-Request-ID: two\r\n\r\n\
          HEAD /3 HTTP/1.1\r\nHost: a\r\nX-Request-ID: three\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: a\r\nX-Request-ID: four\r\n\r\n",
    );
    let r2 = c.read_response();
    let r3 = c.read_response_for(true);
    let r4 = c.read_response();
    assert_eq!(
        [
            r2.header("x-request-id"),
            r3.header("x-request-id"),
            r4.header("x-request-id")
        ],
        [Some("two"), Some("three"), Some("four")]
    );
    assert_eq!((r2.status, r3.status, r4.status), (404, 404, 200));
    assert!(r3.body.is_empty());
    assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
}

#[test]
fn request_bodies_are_consumed_and_the_connection_reused() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    c.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(c.read_response().status, 404);
    c.send(
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: a\r\nX-Request-ID: third\r\n\r\n",
    );
    assert_eq!(c.read_response().status, 404);
    let r = c.read_response();
    assert_eq!(r.header("x-request-id"), Some("third"));
    assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
}

#[test]
fn http10_closes_after_the_response_unless_keep_alive() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);

    let mut c = Client::connect(d.addr);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response().status, 404);
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn expect_continue_without_a_location_gets_404_and_no_100() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    c.send(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 404, "a 100 must not precede the final answer");
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn connect_options_star_and_absolute_form() {
    let d = dito();
    let mut c = Client::connect(d.addr);
    c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert!(r.body_str().contains(r#""code":405"#));
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);

    let r = request(d.addr, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 404);
    let r = request(
        d.addr,
        b"GET http://example.com/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 200, "absolute-form path is matched");
}

#[test]
fn health_endpoints_answer_before_routing() {
    let d = dito();
    let r = get(d.addr, "/healthz");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "{\"status\":\"ok\"}\n")
    );
    let r = get(d.addr, "/readyz");
    assert_eq!(r.status, 200);
    let d = Dito::start(&config("health:\n  liveness_path: /live\n"));
    assert_eq!(get(d.addr, "/live").status, 200);
    assert_eq!(get(d.addr, "/healthz").status, 404);
    let d = Dito::start(&config("health:\n  enabled: false\n"));
    assert_eq!(get(d.addr, "/healthz").status, 404);
}

#[test]
fn a_crowd_of_broken_clients_does_not_disturb_a_good_one() {
    let d = dito();
    let mut good = Client::connect(d.addr);
    for (i, (_, raw)) in BAD_REQUESTS.iter().enumerate() {
        let mut c = Client::connect(d.addr);
        c.send(raw);
        good.send(format!("GET /{i} HTTP/1.1\r\nHost: a\r\nX-Request-ID: g{i}\r\n\r\n").as_bytes());
        let r = good.read_response();
        assert_eq!(r.header("x-request-id"), Some(format!("g{i}").as_str()));
    }
}

fn driver_config(driver: &str) -> String {
    format!("port: 0\nlisten: 127.0.0.1\nworkers: 1\nio_driver: {driver}\n")
}

#[test]
fn uring_refused_is_a_startup_error_when_asked_for() {
    let err = match Dito::try_start_with(&driver_config("uring"), support::seccomp::refuse_io_uring)
    {
        Ok(_) => panic!("started although io_uring was refused"),
        Err(e) => e,
    };
    assert_eq!(err.code, Some(1), "{}", err.output);
    assert!(
        err.output.contains("io_uring") && err.output.contains("EPERM"),
        "{}",
        err.output
    );
}

#[test]
fn auto_falls_back_to_epoll_with_one_warning_naming_the_errno() {
    let d = Dito::try_start_with(&driver_config("auto"), support::seccomp::refuse_io_uring)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let out = d.output();
    let warns: Vec<&str> = out.lines().filter(|l| l.contains("EPERM")).collect();
    assert_eq!(warns.len(), 1, "{out}");
    assert!(
        warns[0].contains("WARN") && warns[0].contains("epoll"),
        "{out}"
    );
    assert_eq!(get(d.addr, "/healthz").status, 200);

    let d = Dito::start(&driver_config("auto"));
    assert!(d.output().contains("io driver: io_uring"), "{}", d.output());
}
