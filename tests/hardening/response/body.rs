//! A malformed chunked response body (#3): a 502 `invalid_response` while nothing of the
//! response was sent, an abort after that; never a reset counted as the client's 499. An
//! upstream that cuts a body short before any of it went out is a 502 `reset` the same way.

use std::time::Duration;

use super::{
    access_record, client_closed, dito_before, scrape_until, send, upstream_errors, Staged, Step,
};
use crate::proxy_common::{assert_upstream_error, head_field, parse_chunked, Raw};
use crate::support::client::{get, Ending};
use crate::support::h2client;
use crate::support::upstream::{Reply, Upstream};
use crate::support::Echo;

/// The reproduction of issue 17: chunk lines ended by a bare LF.
const BAD_CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\n\r\n";

#[test]
fn a_malformed_chunked_body_before_any_byte_went_out_is_a_502() {
    let up = Upstream::start(|_| Reply::Keep(BAD_CHUNKED.to_vec()));
    let d = dito_before(&format!("http://{}", up.addr), "");
    // Held (the default for unknown lengths) and streamed at once (the head still waited in
    // Dito's buffer when the bad line came, so it is taken back).
    for path in ["/bad", "/raw/bad"] {
        assert_upstream_error(&get(d.addr, path), 502, "Bad Gateway", "invalid_response");
        let line = access_record(&d, path);
        assert_eq!(line["status_code"], 502, "{line}");
        assert_eq!(line["aborted"], false, "{line}");
    }
    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        let r = h2client::get(&client, "/bad").await;
        assert_eq!(r.status, 502);
        assert!(
            r.text().contains(r#""upstream_error":"invalid_response""#),
            "{}",
            r.text()
        );
    });
    let s = scrape_until(d.addr, "three invalid_response errors", |s| {
        upstream_errors(s, "invalid_response") >= 3.0
    });
    assert_eq!(upstream_errors(&s, "invalid_response"), 3.0);
    assert_eq!(client_closed(&s), 0.0, "blamed on the client: {s:#?}");
    assert_eq!(s.sum("http_requests_total", &[("status_code", "502")]), 3.0);
}

#[test]
fn a_malformed_chunk_after_bytes_went_out_aborts_without_blaming_the_client() {
    let head_and_chunk: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    // The pause outlasts the 50 ms hold: the head and `hello` reach the client first.
    let up = Staged::start(move |_| {
        vec![
            send(head_and_chunk),
            Step::Pause(Duration::from_millis(300)),
            send(b"5\nhello\r\n0\r\n\r\n"),
        ]
    });
    let d = dito_before(&up.url(), "");
    let mut c = Raw::connect(d.addr);
    c.send(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n");
    let ending = c.read_to_end(Duration::from_secs(10));
    let (head, rest) = c.head_and_rest();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(head_field(&head, "transfer-encoding"), ["chunked"]);
    assert!(
        rest.starts_with(b"5\r\nhello\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(parse_chunked(&rest).is_none(), "a complete body");
    assert_eq!(ending, Ending::Reset, "the client must be able to tell");
    let line = access_record(&d, "/late");
    assert_eq!(line["status_code"], 200, "{line}");
    assert_eq!(line["aborted"], true, "{line}");
    let s = scrape_until(d.addr, "an invalid_response error", |s| {
        upstream_errors(s, "invalid_response") >= 1.0
    });
    assert_eq!(upstream_errors(&s, "reset"), 0.0);
    assert_eq!(client_closed(&s), 0.0, "blamed on the client: {s:#?}");
}

#[test]
fn an_upstream_cutting_a_held_body_short_before_any_byte_went_out_is_a_502() {
    // `dito-echo` announces a chunked body, sends 1000 bytes of it and closes: the body is
    // still held (spec §6), so the client gets the failure instead of a cut 200.
    let e = Echo::start();
    let d = dito_before(&format!("http://{}", e.addr), "");
    let path = "/abort?bytes=1000&mode=chunked-close";
    assert_upstream_error(&get(d.addr, path), 502, "Bad Gateway", "reset");
    let line = access_record(&d, path);
    assert_eq!(line["status_code"], 502, "{line}");
    assert_eq!(line["aborted"], false, "{line}");
    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        let r = h2client::get(&client, path).await;
        assert_eq!(r.status, 502);
        assert!(
            r.text().contains(r#""upstream_error":"reset""#),
            "{}",
            r.text()
        );
    });
    let s = scrape_until(d.addr, "two reset errors", |s| {
        upstream_errors(s, "reset") >= 2.0
    });
    assert_eq!(client_closed(&s), 0.0, "blamed on the client: {s:#?}");
}
