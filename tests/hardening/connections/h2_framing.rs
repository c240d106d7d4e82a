//! RFC 9113 §8.1.1: an HTTP/2 request whose DATA contradicts its `content-length` is
//! malformed; it must never reach the upstream as a complete request. Issue 17: HEADERS for
//! `POST /h2` with `content-length: 0` and no END_STREAM, then 38 bytes of DATA — the client
//! got RST_STREAM PROTOCOL_ERROR, but the origin had already received and answered the POST.
//!
//! After the reset, a second request on the same connection (and a grace period for a request
//! still travelling) shows what the upstream received.

use std::time::Duration;

use super::raw_h2::{RawH2, PROTOCOL_ERROR};
use crate::proxy_common::{loc, one_worker, yaml};
use crate::support::h2_upstream::H2Upstream;
use crate::support::upstream::{ok, Req, Upstream};
use crate::support::Dito;

const WAIT: Duration = Duration::from_secs(10);
/// How long a request Dito had forwarded would take at most to show up upstream.
const GRACE: Duration = Duration::from_millis(500);

fn h1_upstream() -> (Upstream, Dito) {
    let up = Upstream::start(|r| ok(&format!("got {} bytes", r.body.len())));
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    (up, d)
}

/// Sends `GET /after` on stream 3 and waits for its response: the connection still serves.
fn after(h2: &mut RawH2) {
    h2.get(3, "/after");
    assert!(h2.wait_response_end(3, WAIT), "no response to /after");
}

/// Every request the HTTP/1.1 upstream received up to `/after` and within the grace.
fn upstream_requests(up: &Upstream) -> Vec<Req> {
    let mut seen = Vec::new();
    while let Some(r) = up.next_request(GRACE) {
        seen.push(r);
    }
    assert!(
        seen.iter().any(|r| r.target() == "/after"),
        "the upstream never got /after: {seen:?}"
    );
    seen
}

#[test]
fn data_after_a_zero_content_length_never_reaches_an_http1_upstream() {
    let (up, d) = h1_upstream();
    let mut h2 = RawH2::connect(d.addr);
    h2.headers(1, "POST", "/h2", &[("content-length", "0")], false);
    h2.data(1, &[b'x'; 38], false);
    assert_eq!(h2.wait_rst_stream(1, WAIT), Some(PROTOCOL_ERROR));
    after(&mut h2);
    let seen = upstream_requests(&up);
    assert!(
        !seen.iter().any(|r| r.target() == "/h2"),
        "the malformed request reached the upstream: {seen:?}"
    );
}

#[test]
fn data_beyond_the_content_length_never_completes_an_http1_upstream_request() {
    let (up, d) = h1_upstream();
    let mut h2 = RawH2::connect(d.addr);
    h2.headers(1, "POST", "/h2", &[("content-length", "5")], false);
    h2.data(1, b"hello", false);
    h2.data(1, b"xyz", false);
    assert_eq!(h2.wait_rst_stream(1, WAIT), Some(PROTOCOL_ERROR));
    after(&mut h2);
    // The support upstream reports a request only once its whole body arrived.
    let seen = upstream_requests(&up);
    assert!(
        !seen.iter().any(|r| r.target() == "/h2"),
        "the upstream received the malformed request complete: {seen:?}"
    );
}

#[test]
fn data_after_a_zero_content_length_never_reaches_an_http2_upstream() {
    let up = H2Upstream::plain();
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc(
            "^/",
            &up.url(),
            "    transport:\n      http:\n        force_http2: true\n",
        )],
    )));
    let mut h2 = RawH2::connect(d.addr);
    h2.headers(1, "POST", "/echo", &[("content-length", "0")], false);
    h2.data(1, &[b'x'; 38], false);
    assert_eq!(h2.wait_rst_stream(1, WAIT), Some(PROTOCOL_ERROR));
    h2.get(3, "/bytes/1");
    assert!(h2.wait_response_end(3, WAIT), "no response to /bytes/1");
    std::thread::sleep(GRACE);
    let seen = up.seen();
    assert!(
        !seen.iter().any(|s| s.path == "/echo"),
        "the malformed request reached the upstream: {seen:?}"
    );
}

/// The hold costs a well-formed request nothing: a length reached before END_STREAM, then an
/// empty DATA frame that ends the stream, is forwarded whole; a zero length whose END_STREAM
/// comes on an empty DATA frame too.
#[test]
fn a_declared_length_confirmed_by_a_later_end_stream_is_forwarded() {
    let (up, d) = h1_upstream();
    let mut h2 = RawH2::connect(d.addr);
    h2.headers(1, "POST", "/five", &[("content-length", "5")], false);
    h2.data(1, b"hello", false);
    h2.data(1, b"", true);
    assert!(h2.wait_response_end(1, WAIT), "no response to /five");
    h2.headers(3, "POST", "/zero", &[("content-length", "0")], false);
    h2.data(3, b"", true);
    assert!(h2.wait_response_end(3, WAIT), "no response to /zero");
    let r = up.next_request(WAIT).expect("/five upstream");
    assert_eq!(
        (r.target(), r.body.as_slice()),
        ("/five", b"hello".as_slice())
    );
    let r = up.next_request(WAIT).expect("/zero upstream");
    assert_eq!((r.target(), r.body.len()), ("/zero", 0));
}
