//! `transport.http.read_timeout` (#14, spec §5, §6): an upstream that stops sending its
//! response body is cut after that long without a byte (an abort, or 504 `read_timeout` when
//! nothing was sent yet); one that is slow but keeps sending is never cut.

use std::time::{Duration, Instant};

use super::{
    access_record, client_closed, dito_before, scrape_until, send, upstream_errors, Staged, Step,
};
use crate::proxy_common::{assert_upstream_error, head_field, loc, pattern, yaml, Raw};
use crate::support::client::{get, Ending};
use crate::support::h2_upstream::H2Upstream;
use crate::support::Dito;

const ONE_SECOND: &str = "transport:\n  http:\n    read_timeout: 1s\n";

/// Far enough apart to be slow, close enough to beat a 1 s timeout every time.
const DRIP: Duration = Duration::from_millis(500);

/// Asserts that a cut came after the 1 s timeout, and not much later.
fn assert_cut_on_time(took: Duration, what: &str) {
    assert!(
        took >= Duration::from_millis(950),
        "{what}: cut early, after {took:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "{what}: cut late, after {took:?}"
    );
}

/// GETs `path` and reads until Dito ends the connection: (head, body bytes, ending, time).
fn until_cut(d: &Dito, path: &str) -> (String, Vec<u8>, Ending, Duration) {
    let mut c = Raw::connect(d.addr);
    let t = Instant::now();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    let ending = c.read_to_end(Duration::from_secs(10));
    let took = t.elapsed();
    let (head, rest) = c.head_and_rest();
    (head, rest, ending, took)
}

/// A body `parts` bytes long sent one byte every [`DRIP`]: `Content-Length` or chunked.
fn drip(chunked: bool, parts: usize) -> Vec<Step> {
    let mut steps = vec![send(if chunked {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    })];
    for b in pattern(parts) {
        steps.push(Step::Pause(DRIP));
        steps.push(if chunked {
            send(&[b"1\r\n", &[b][..], b"\r\n"].concat())
        } else {
            send(&[b])
        });
    }
    if chunked {
        steps.push(send(b"0\r\n\r\n"));
    }
    steps
}

fn staged_origin() -> Staged {
    Staged::start(|target| match target {
        // Announces 100 bytes, sends 50, then nothing.
        "/cl-stall" => vec![send(
            &[
                &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"[..],
                &pattern(50),
            ]
            .concat(),
        )],
        "/chunked-stall" => vec![send(
            &[
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n"[..],
                &pattern(50),
                b"\r\n",
            ]
            .concat(),
        )],
        // A head, and not one body byte.
        "/cl-silent" => vec![send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")],
        "/cl-drip" => drip(false, 4),
        _ => drip(true, 4),
    })
}

#[test]
fn a_stalled_body_is_cut_after_read_timeout_and_a_slow_one_is_not() {
    let up = staged_origin();
    let d = dito_before(&up.url(), ONE_SECOND);
    for path in ["/cl-stall", "/chunked-stall", "/raw/chunked-stall"] {
        let (head, body, ending, took) = until_cut(&d, path);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        assert_eq!(
            ending,
            Ending::Reset,
            "{path}: the client must be able to tell"
        );
        assert_cut_on_time(took, path);
        if path == "/cl-stall" {
            assert_eq!(head_field(&head, "content-length"), ["100"]);
            assert_eq!(body, pattern(50), "{path}");
        } else {
            let want = [&b"32\r\n"[..], &pattern(50), b"\r\n"].concat();
            assert_eq!(body, want, "{path}: {:?}", String::from_utf8_lossy(&body));
        }
        let line = access_record(&d, path);
        assert_eq!(
            (line["status_code"].as_u64(), line["aborted"].as_bool()),
            (Some(200), Some(true)),
            "{line}"
        );
    }
    // Slow but progressing: four bytes half a timeout apart, whole.
    for path in ["/cl-drip", "/chunked-drip", "/raw/chunked-drip"] {
        let t = Instant::now();
        let r = get(d.addr, path);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &pattern(4)[..]),
            "{path}: {r:?}"
        );
        assert!(
            t.elapsed() >= DRIP * 4,
            "{path}: not slow: {:?}",
            t.elapsed()
        );
    }
    let s = scrape_until(d.addr, "three read timeouts", |s| {
        upstream_errors(s, "read_timeout") >= 3.0
    });
    assert_eq!(upstream_errors(&s, "read_timeout"), 3.0);
    assert_eq!(client_closed(&s), 0.0, "blamed on the client: {s:#?}");
}

#[test]
fn a_body_that_never_starts_gets_504_read_timeout() {
    let up = staged_origin();
    let d = dito_before(&up.url(), ONE_SECOND);
    let t = Instant::now();
    let r = get(d.addr, "/cl-silent");
    assert_cut_on_time(t.elapsed(), "/cl-silent");
    assert_upstream_error(&r, 504, "Gateway Timeout", "read_timeout");
    let line = access_record(&d, "/cl-silent");
    assert_eq!(
        (line["status_code"].as_u64(), line["aborted"].as_bool()),
        (Some(504), Some(false)),
        "{line}"
    );
    let s = scrape_until(d.addr, "a read timeout", |s| {
        upstream_errors(s, "read_timeout") >= 1.0
    });
    assert_eq!(upstream_errors(&s, "read_timeout"), 1.0);
}

#[test]
fn an_http2_upstream_gets_the_location_read_timeout() {
    let up = H2Upstream::plain();
    // The location's 1 s overrides the global 30 s (and keeps the global's other keys).
    let location =
        "    transport:\n      http:\n        force_http2: true\n        read_timeout: 1s\n";
    let d = Dito::start(&yaml(
        "transport:\n  http:\n    read_timeout: 30s\n",
        &[loc("^/", &up.url(), location)],
    ));
    let (head, body, ending, took) = until_cut(&d, "/stall/50");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(head_field(&head, "content-length"), ["100"]);
    assert_eq!(body, pattern(50));
    assert_eq!(ending, Ending::Reset);
    assert_cut_on_time(took, "/stall/50");
    let t = Instant::now();
    let r = get(d.addr, "/drip/4?ms=500");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &pattern(4)[..]),
        "{r:?}"
    );
    assert!(t.elapsed() >= DRIP * 4, "not slow: {:?}", t.elapsed());
}
