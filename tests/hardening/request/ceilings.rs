//! Item 17: every request limit has a maximum the validator enforces (naming the key and the
//! maximum), and a config at the maxima — with the largest body sizes and durations the
//! config accepts — serves requests that arrive split across reads.

use std::time::Duration;

use crate::proxy_common::{loc, yaml};
use crate::support::client::Client;
use crate::support::upstream::{ok, Upstream};
use crate::support::{run_dito, temp_dir, write_file, Dito};

/// The largest duration the config accepts (Go's, i64 nanoseconds), less its fraction.
const LONGEST: &str = "2562047h";

#[test]
fn dito_check_names_each_limit_over_its_maximum() {
    let dir = temp_dir();
    let cfg = write_file(
        &dir,
        "config.yaml",
        "request_limits:\n  max_request_line_bytes: 18446744073709551615\n  \
         max_header_bytes: 18446744073709551615\n  max_headers: 18446744073709551615\n",
    );
    let out = run_dito(&["check", "-f", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "request_limits.max_request_line_bytes: 18446744073709551615 is too large (the maximum is 1048576)",
        "request_limits.max_header_bytes: 18446744073709551615 is too large (the maximum is 1048576)",
        "request_limits.max_headers: 18446744073709551615 is too large (the maximum is 1024)",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `bytes` in `parts` writes with a pause between them, so Dito reads them apart.
fn send_split(c: &mut Client, bytes: &[u8], parts: usize) {
    for piece in bytes.chunks(bytes.len().div_ceil(parts)) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(40));
    }
}

#[test]
fn a_config_at_the_maxima_serves_requests_split_across_reads() {
    let up = Upstream::start(|_| ok("fine"));
    let top = format!(
        "request_timeout: {LONGEST}\n\
         request_limits:\n  max_request_line_bytes: 1048576\n  max_header_bytes: 1048576\n  \
         max_headers: 1024\n  max_request_body_size: 18446744073709551615\n  \
         header_read_timeout: {LONGEST}\n  keep_alive_timeout: {LONGEST}\n  \
         body_idle_timeout: {LONGEST}\n\
         response_limits:\n  max_response_body_size: 18446744073709551615\n\
         transport:\n  http:\n    dial_timeout: {LONGEST}\n    response_header_timeout: {LONGEST}\n    \
         expect_continue_timeout: {LONGEST}\n    idle_conn_timeout: {LONGEST}\n    \
         keep_alive: {LONGEST}\n"
    );
    let d = Dito::start(&yaml(
        &top,
        &[loc("^/", &format!("http://{}", up.addr), "")],
    ));
    let mut c = Client::connect(d.addr);

    // A head in three reads.
    send_split(
        &mut c,
        b"GET /split HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n",
        3,
    );
    assert_eq!(c.read_response().status, 200);
    assert_eq!(
        up.next_request(Duration::from_secs(5)).unwrap().target(),
        "/split"
    );

    // A chunked body in pieces, with a trailer.
    send_split(
        &mut c,
        b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
        4,
    );
    assert_eq!(c.read_response().status, 200);
    let seen = up.next_request(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.body, b"hello world");

    // The most header fields allowed, with a long request line, in several reads.
    let mut big = format!("GET /{} HTTP/1.1\r\nHost: t\r\n", "p".repeat(100_000)).into_bytes();
    for i in 1..1024 {
        big.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    send_split(&mut c, &big, 5);
    assert_eq!(c.read_response().status, 200);
    let seen = up.next_request(Duration::from_secs(5)).unwrap();
    assert!(seen.head.contains("\r\nX-F1023: 1023\r\n"));

    // One field more is 431.
    let mut over = b"GET /over HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 1..=1024 {
        over.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    over.extend_from_slice(b"\r\n");
    c.send(&over);
    assert_eq!(c.read_response().status, 431);
}
