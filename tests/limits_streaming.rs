//! Response bodies that must not be held back by the buffering policy (spec §6, with the §4
//! abort): SSE and slow chunked bodies reach the client piece by piece,
//! `disable_response_buffering` streams unknown lengths and aborts on excess, and a body that
//! crosses the limit after the 1 MiB window has streamed breaks the transfer (a reset, never a
//! clean end, also for an HTTP/1.0 client).
//!
//! The upstream is the demo `dito-echo`. Everything is real sockets on 127.0.0.1 with ephemeral
//! ports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod limits_common;
mod support;

use std::time::{Duration, Instant};

use limits_common::{
    echo_dito, expect_chunked, expect_response_413, get_req, pattern_byte, ChunkedEnd, Conn, End,
    MIB,
};

/// Reads a response expected to be aborted mid-body: 200, chunked, pattern bytes, no
/// terminating chunk, a reset. Returns the body bytes seen.
fn expect_chunked_abort(c: &mut Conn, max_body: u64) -> u64 {
    let h = match c.try_head() {
        Ok(h) => h,
        Err((end, got)) => panic!("no head at all ({end:?}), got {got:?}"),
    };
    assert_eq!(h.status, 200, "{:?}", h.raw);
    assert!(h.is_chunked(), "{:?}", h.raw);
    let mut seen = 0u64;
    let mut bad = None;
    let end = c.body_chunked(&mut |b| {
        for &x in b {
            if x != pattern_byte(seen) && bad.is_none() {
                bad = Some(seen);
            }
            seen += 1;
        }
    });
    assert_eq!(bad, None, "body differs from the pattern");
    assert_eq!(
        end,
        ChunkedEnd::Broken(End::Reset),
        "after {seen} body bytes"
    );
    assert!(
        seen <= max_body,
        "{seen} body bytes relayed, limit {max_body}"
    );
    seen
}

#[test]
fn crossing_the_limit_after_the_window_streamed_breaks_the_transfer() {
    let (_e, d) = echo_dito(2 * MIB);
    let mut c = Conn::connect(d.addr);
    c.send(&get_req("/chunked/3145728"));
    expect_chunked_abort(&mut c, 2 * MIB);
    // Close-delimited upstream body, HTTP/1.1 client: re-framed as chunked, then broken.
    let mut c = Conn::connect(d.addr);
    c.send(&get_req("/close/3145728"));
    expect_chunked_abort(&mut c, 2 * MIB);
}

#[test]
fn crossing_the_limit_late_for_an_http10_client_is_a_reset_not_a_clean_close() {
    let (_e, d) = echo_dito(2 * MIB);
    let mut c = Conn::connect(d.addr);
    c.send(b"GET /chunked/3145728 HTTP/1.0\r\n\r\n");
    let h = c.head();
    assert_eq!(h.status, 200);
    assert_eq!(h.count("content-length"), 0, "{:?}", h.raw);
    assert_eq!(h.count("transfer-encoding"), 0, "{:?}", h.raw);
    let mut seen = 0u64;
    let end = c.body_close(&mut |b| seen += b.len() as u64);
    assert_eq!(end, End::Reset, "after {seen} body bytes");
    assert!(seen <= 2 * MIB, "{seen}");
}

// ---------------------------------------------------------------------------------------------
// Bodies that must not be held
// ---------------------------------------------------------------------------------------------

/// Reads a chunked body, recording when each data piece arrived (relative to `t0`).
fn timed_chunked(c: &mut Conn, t0: Instant) -> (Vec<(Duration, Vec<u8>)>, ChunkedEnd) {
    let mut pieces = Vec::new();
    let end = c.body_chunked(&mut |b| pieces.push((t0.elapsed(), b.to_vec())));
    (pieces, end)
}

fn joined(pieces: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    pieces.iter().flat_map(|(_, b)| b.clone()).collect()
}

#[test]
fn sse_is_not_held() {
    // The limit is above both streams; a held stream would end inside the window.
    let (_e, d) = echo_dito(MIB);
    let mut c = Conn::connect(d.addr);
    let t0 = Instant::now();
    c.send(&get_req("/sse?events=2&interval_ms=1000"));
    let h = c.head();
    assert_eq!(h.status, 200);
    assert!(h.is_chunked(), "{:?}", h.raw);
    assert_eq!(h.header("content-type"), Some("text/event-stream"));
    let (pieces, end) = timed_chunked(&mut c, t0);
    assert!(matches!(end, ChunkedEnd::Complete { .. }), "{end:?}");
    assert_eq!(joined(&pieces), b"data: event 1\n\ndata: event 2\n\n");
    let first = pieces[0].0;
    assert_eq!(pieces[0].1, b"data: event 1\n\n", "{pieces:?}");
    assert!(
        first < Duration::from_millis(500),
        "event 1 after {first:?}"
    );
    let last = pieces.last().unwrap().0;
    assert!(last >= Duration::from_millis(900), "event 2 after {last:?}");

    // Events faster than the hold's idle time: a held stream would arrive whole at the end.
    let mut c = Conn::connect(d.addr);
    let t0 = Instant::now();
    c.send(&get_req("/sse?events=20&interval_ms=20"));
    let h = c.head();
    let head_at = t0.elapsed();
    assert!(h.is_chunked(), "{:?}", h.raw);
    assert_eq!(h.count("content-length"), 0, "{:?}", h.raw);
    let (pieces, end) = timed_chunked(&mut c, t0);
    assert!(matches!(end, ChunkedEnd::Complete { .. }), "{end:?}");
    assert_eq!(
        joined(&pieces).len(),
        (1..=20)
            .map(|k| format!("data: event {k}\n\n").len())
            .sum::<usize>()
    );
    // Event 20 is sent no earlier than 19 × 20 ms after the request: event 1 (and the head)
    // must be here before that.
    let last_sent = Duration::from_millis(19 * 20);
    assert!(head_at < last_sent, "head after {head_at:?}");
    assert!(
        pieces[0].0 < last_sent,
        "event 1 after {:?}: held",
        pieces[0].0
    );
}

#[test]
fn slow_chunked_body_reaches_the_client_chunk_by_chunk() {
    let (_e, d) = echo_dito(90);
    let mut c = Conn::connect(d.addr);
    let t0 = Instant::now();
    c.send(&get_req("/slow-body?ms=200&chunks=5"));
    let h = c.head();
    let head_at = t0.elapsed();
    assert_eq!(h.status, 200);
    assert!(h.is_chunked(), "{:?}", h.raw);
    assert_eq!(h.count("content-length"), 0);
    let (pieces, end) = timed_chunked(&mut c, t0);
    assert!(matches!(end, ChunkedEnd::Complete { .. }), "{end:?}");
    assert_eq!(joined(&pieces), b"x\n".repeat(5));
    // Chunk k (0-based) is sent no earlier than k × 200 ms after the request. Each must reach
    // the client before the next one is even sent; the first within ~150 ms of the head.
    let arrivals = arrival_per_unit(&pieces, 2);
    assert_eq!(arrivals.len(), 5);
    for (k, at) in arrivals.iter().enumerate().take(4) {
        let next_sent = Duration::from_millis(200 * (k as u64 + 1));
        assert!(
            *at < next_sent,
            "chunk {k} arrived at {at:?}, after chunk {} was sent: {arrivals:?}",
            k + 1
        );
    }
    assert!(
        arrivals[0].saturating_sub(head_at) <= Duration::from_millis(150),
        "head at {head_at:?}, first chunk at {:?}",
        arrivals[0]
    );
    assert!(arrivals[4] >= Duration::from_millis(800), "{arrivals:?}");
}

/// When each `unit`-byte piece of a body arrived (the time of the read that completed it).
fn arrival_per_unit(pieces: &[(Duration, Vec<u8>)], unit: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut total = 0;
    for (at, b) in pieces {
        total += b.len();
        while out.len() < total / unit {
            out.push(*at);
        }
    }
    out
}

#[test]
fn disabled_buffering_streams_unknown_lengths_and_aborts_on_excess() {
    let (_e, d) = echo_dito(90);
    // Exactly the limit: chunked as it came, no invented length.
    expect_chunked(d.addr, "/raw/chunked/90", 90);
    expect_chunked(d.addr, "/raw/close/90", 90);
    // Declared lengths are still checked up front.
    expect_response_413(d.addr, "/raw/bytes/91", 90, "/raw/bytes/91");
    // A trickle is relayed at once (with buffering it would be held whole).
    let mut c = Conn::connect(d.addr);
    let t0 = Instant::now();
    c.send(&get_req("/raw/slow-body?ms=10&chunks=20"));
    let h = c.head();
    assert!(h.is_chunked(), "{:?}", h.raw);
    let (pieces, end) = timed_chunked(&mut c, t0);
    assert!(matches!(end, ChunkedEnd::Complete { .. }), "{end:?}");
    assert_eq!(joined(&pieces), b"x\n".repeat(20));
    // The last chunk is sent no earlier than 19 × 10 ms after the request; held, the first
    // would only come then.
    let first = arrival_per_unit(&pieces, 2)[0];
    assert!(
        first < Duration::from_millis(190),
        "first chunk at {first:?}"
    );
    // Excess aborts: never a complete response, never a 413 after a 200.
    for path in [
        "/raw/chunked/200?chunk=50",
        "/raw/chunked/91",
        "/raw/close/200",
    ] {
        let mut c = Conn::connect(d.addr);
        c.send(&get_req(path));
        match c.try_head() {
            Err((end, got)) => assert!(
                end == End::Reset && got.is_empty(),
                "{path}: {end:?} {got:?}"
            ),
            Ok(h) => {
                assert_eq!(h.status, 200, "{path}: {:?}", h.raw);
                assert!(h.is_chunked(), "{path}: {:?}", h.raw);
                let mut seen = 0u64;
                let end = c.body_chunked(&mut |b| seen += b.len() as u64);
                assert_eq!(end, ChunkedEnd::Broken(End::Reset), "{path}: {seen} bytes");
                assert!(seen <= 90, "{path}: {seen}");
            }
        }
    }
}
