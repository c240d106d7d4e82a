//! Proxying when upstreams misbehave, and the per-worker upstream pool (spec §5, §7): invalid
//! upstream responses (duplicate lengths, unknown codings, garbage heads), 502 and 504 with
//! Dito's error envelope, transport overrides, an upstream abort mid-body resetting the client,
//! and the pool (reuse, no reuse after close/framing error/abort, retry of idempotent requests
//! only, the connection limit).
//!
//! Upstreams are the demo `dito-echo` or scripted ones (`support::upstream`). Everything is
//! real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use proxy_common::{
    assert_upstream_error, closed_port, echoed, find, get_on, head_field, loc, one_worker,
    parse_chunked, pattern, through_echo, through_echo_one_worker, yaml, Raw,
};
use support::client::{get, request, Client, Ending, Resp};
use support::upstream::{ok, Gate, Reply, Upstream};
use support::{Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Invalid upstream responses, 502 and 504
// ---------------------------------------------------------------------------------------------

#[test]
fn upstream_with_two_content_lengths_gets_502() {
    let (_e, d) = through_echo("");
    let r = get(d.addr, "/two-cl");
    assert_upstream_error(&r, 502, "Bad Gateway", "invalid_response");
    assert!(!r.body_str().contains("hello"));
}

#[test]
fn upstream_transfer_coding_other_than_chunked_gets_502() {
    let (_e, d) = through_echo("");
    let r = get(d.addr, "/te-gzip");
    assert_upstream_error(&r, 502, "Bad Gateway", "invalid_response");
}

#[test]
fn refused_connection_gets_502_without_internal_detail() {
    let port = closed_port();
    let d = Dito::start(&yaml(
        "",
        &[loc("^/", &format!("http://127.0.0.1:{port}"), "")],
    ));
    let r = get(d.addr, "/x");
    assert_upstream_error(&r, 502, "Bad Gateway", "connect_refused");
    let all = format!("{:?} {}", r.headers, r.body_str());
    assert!(!all.contains("127.0.0.1"), "{all}");
    assert!(!all.contains(&port.to_string()), "{all}");
    assert!(!all.contains("os error"), "{all}");
}

#[test]
fn response_header_timeout_gets_504() {
    let (_e, d) = through_echo("transport:\n  http:\n    response_header_timeout: 1s\n");
    let t = Instant::now();
    let r = get(d.addr, "/slow-head?ms=3000");
    let took = t.elapsed();
    assert_upstream_error(&r, 504, "Gateway Timeout", "response_header_timeout");
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // The next request is served normally.
    assert_eq!(echoed(&get(d.addr, "/echo/next")).target, "/echo/next");
}

#[test]
fn request_timeout_gets_504() {
    let (_e, d) = through_echo("request_timeout: 1s\n");
    let t = Instant::now();
    let r = get(d.addr, "/slow-head?ms=3000");
    let took = t.elapsed();
    assert_upstream_error(&r, 504, "Gateway Timeout", "request_timeout");
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[test]
fn location_transport_overrides_only_the_keys_it_sets() {
    let e = Echo::start();
    let extra = "    transport:\n      http:\n        dial_timeout: 2s\n";
    let d = Dito::start(&yaml(
        "transport:\n  http:\n    response_header_timeout: 1s\n",
        &[loc("^/", &format!("http://{}", e.addr), extra)],
    ));
    let t = Instant::now();
    let r = get(d.addr, "/slow-head?ms=3000");
    assert_upstream_error(&r, 504, "Gateway Timeout", "response_header_timeout");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

/// Dito in front of a scripted upstream that answers every request with `reply`.
fn scripted(reply: &'static [u8]) -> (Upstream, Dito) {
    let up = Upstream::start(move |_| Reply::Keep(reply.to_vec()));
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    (up, d)
}

#[test]
fn upstream_closing_a_fresh_connection_without_a_response_gets_502_reset() {
    let up = Upstream::start(|_| Reply::Drop);
    let d = Dito::start(&yaml("", &[loc("^/", &format!("http://{}", up.addr), "")]));
    let r = get(d.addr, "/x");
    assert_upstream_error(&r, 502, "Bad Gateway", "reset");
    // A fresh connection is not retried.
    assert_eq!(up.accepted(), 1);
}

#[test]
fn garbage_upstream_head_gets_502_invalid_response() {
    let (_up, d) = scripted(b"HTTP/1.1 2xx Nope\r\nX: 1\r\n\r\n");
    assert_upstream_error(&get(d.addr, "/x"), 502, "Bad Gateway", "invalid_response");
    let (_up, d) = scripted(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    assert_upstream_error(&get(d.addr, "/x"), 502, "Bad Gateway", "invalid_response");
}

#[test]
fn identical_repeated_content_lengths_are_accepted() {
    let (_up, d) =
        scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    let r = get(d.addr, "/x");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"hello");
}

#[test]
fn upstream_content_length_with_chunked_is_never_relayed_as_both() {
    // RFC 9112 §6.3: chunked wins and the length must not be forwarded (a smuggling vector).
    let (_up, d) = scripted(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let mut c = Raw::connect(d.addr);
    c.send(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until_contains(b"\r\n\r\n");
    let (head, _) = c.head_and_rest();
    if head.starts_with("HTTP/1.1 502 ") {
        assert!(head_field(&head, "transfer-encoding").is_empty(), "{head}");
        return;
    }
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head_field(&head, "content-length").is_empty(), "{head}");
    assert_eq!(
        head_field(&head, "transfer-encoding"),
        ["chunked"],
        "{head}"
    );
    c.read_until("the chunked body", |b| {
        find(b, b"\r\n\r\n").is_some_and(|end| parse_chunked(&b[end + 4..]).is_some())
    });
    let (_, rest) = c.head_and_rest();
    assert_eq!(parse_chunked(&rest).unwrap().0, b"hello");
}

#[test]
fn unsolicited_100_is_not_sent_to_a_client_that_did_not_expect_it() {
    let (_up, d) =
        scripted(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = get(d.addr, "/x");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"ok");
}

#[test]
fn length_on_304_and_head_responses_is_not_waited_for() {
    // A 304 may carry the representation's Content-Length; no body follows it.
    let up = Upstream::start(|r| {
        if r.target() == "/304" {
            Reply::Keep(
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n"
                    .to_vec(),
            )
        } else if r.head.starts_with("HEAD ") {
            Reply::Keep(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec())
        } else {
            ok(&format!("conn {} seq {}", r.conn, r.seq))
        }
    });
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    let mut c = Client::connect(d.addr);
    let r = get_on(&mut c, "/304");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
    c.send(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response_for(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("100")));
    assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
    // The upstream connection was left correctly framed and is reused.
    assert_eq!(get_on(&mut c, "/next").body_str(), "conn 1 seq 3");
}

#[test]
fn pipelined_requests_are_proxied_in_order() {
    let (_e, d) = through_echo("");
    let mut c = Client::connect(d.addr);
    c.send(
        b"GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /echo/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
          GET /bytes/5 HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD /bytes/7 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /echo/5 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(echoed(&c.read_response()).target, "/echo/1");
    let ec = echoed(&c.read_response());
    assert_eq!((ec.target.as_str(), ec.body_length), ("/echo/2", 3));
    assert_eq!(c.read_response().body, b"abcde");
    let r = c.read_response_for(true);
    assert_eq!(r.header("content-length"), Some("7"));
    assert_eq!(echoed(&c.read_response()).target, "/echo/5");
    assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
}

// ---------------------------------------------------------------------------------------------
// Aborts
// ---------------------------------------------------------------------------------------------

#[test]
fn upstream_abort_mid_body_resets_the_client() {
    let (_e, d) = through_echo("");
    let mut endings = Vec::new();
    for mode in ["cl", "chunked", "cl-close", "chunked-close"] {
        let mut c = Raw::connect(d.addr);
        c.send(
            format!("GET /raw/abort?bytes=1000&mode={mode} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        );
        let ending = c.read_to_end(Duration::from_secs(10));
        let (head, rest) = c.head_and_rest();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{mode}: {head}");
        if mode.starts_with("chunked") {
            assert_eq!(
                head_field(&head, "transfer-encoding"),
                ["chunked"],
                "{mode}"
            );
            assert!(
                parse_chunked(&rest).is_none(),
                "{mode}: a complete chunked body: {:?}",
                String::from_utf8_lossy(&rest)
            );
        } else {
            assert_eq!(head_field(&head, "content-length"), ["2000"], "{mode}");
            assert!(rest.len() < 2000, "{mode}: {} body bytes", rest.len());
            assert!(rest == pattern(rest.len()), "{mode}: body differs");
        }
        endings.push((mode, ending, rest.len()));
    }
    // (mode, how the connection ended, body bytes received before that)
    let want: Vec<_> = endings
        .iter()
        .map(|&(m, _, n)| (m, Ending::Reset, n))
        .collect();
    assert_eq!(
        endings, want,
        "the client must see a reset, never a clean end"
    );
}

// ---------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------

fn echo_conn(r: &Resp) -> (u64, u64) {
    (
        r.header("x-echo-conn").unwrap().parse().unwrap(),
        r.header("x-echo-seq").unwrap().parse().unwrap(),
    )
}

#[test]
fn sequential_requests_reuse_one_upstream_connection() {
    let (_e, d) = through_echo_one_worker("");
    let first = echo_conn(&get(d.addr, "/echo/1"));
    assert_eq!(first.1, 1);
    for k in 2..=4 {
        // A new client connection each time: the pool is per worker, not per client.
        let r = get(d.addr, &format!("/echo/{k}"));
        assert_eq!(echo_conn(&r), (first.0, k), "request {k}");
    }
    let mut c = Client::connect(d.addr);
    for k in 5..=6 {
        assert_eq!(echo_conn(&get_on(&mut c, "/bytes/10")), (first.0, k));
    }
}

#[test]
fn idle_upstream_connections_close_after_idle_conn_timeout_without_further_requests() {
    use std::io::{Read, Write};
    // A raw upstream: one keep-alive response, then it waits to see Dito close the socket.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the request");
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        let answered = Instant::now();
        // EOF (or an error) is Dito closing the pooled connection.
        let _ = s.read(&mut buf);
        let _ = tx.send(answered.elapsed());
    });
    let d = Dito::start(&one_worker(yaml(
        "transport:\n  http:\n    idle_conn_timeout: 1s\n",
        &[loc("^/", &format!("http://127.0.0.1:{port}"), "")],
    )));
    assert_eq!(get(d.addr, "/").body, b"ok");
    // No further request ever asks for that key: the sweep closes it within about 1 s + 1 s.
    let closed_after = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the idle upstream connection was never closed");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(5),
        "{closed_after:?}"
    );
}

#[test]
fn no_reuse_after_connection_close() {
    let (_e, d) = through_echo_one_worker("");
    let (conn, _) = echo_conn(&get(d.addr, "/echo/a"));
    let r = get(d.addr, "/no-reuse");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"bye\n"[..]));
    assert_eq!(echo_conn(&r), (conn, 2));
    assert_eq!(echo_conn(&get(d.addr, "/echo/b")), (conn + 1, 1));

    // An upstream that says `Connection: close` yet keeps the socket open must not be reused.
    let up = Upstream::start(|r| {
        if r.target() == "/close" {
            Reply::Keep(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            )
        } else {
            ok(&format!("conn {} seq {}", r.conn, r.seq))
        }
    });
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    assert_eq!(get(d.addr, "/close").body, b"ok");
    assert_eq!(get(d.addr, "/next").body_str(), "conn 2 seq 1");
}

#[test]
fn no_reuse_after_a_framing_error() {
    let (_e, d) = through_echo_one_worker("");
    let (conn, _) = echo_conn(&get(d.addr, "/echo/a"));
    assert_eq!(get(d.addr, "/two-cl").status, 502);
    assert_eq!(echo_conn(&get(d.addr, "/echo/b")), (conn + 1, 1));

    // An upstream that keeps the connection open after the invalid response.
    let up = Upstream::start(|r| {
        if r.target() == "/bad" {
            Reply::Keep(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            )
        } else {
            ok(&format!("conn {} seq {}", r.conn, r.seq))
        }
    });
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    assert_eq!(get(d.addr, "/first").body_str(), "conn 1 seq 1");
    assert_upstream_error(&get(d.addr, "/bad"), 502, "Bad Gateway", "invalid_response");
    assert_eq!(get(d.addr, "/next").body_str(), "conn 2 seq 1");
}

#[test]
fn no_reuse_after_an_aborted_response() {
    let (_e, d) = through_echo_one_worker("");
    let (conn, _) = echo_conn(&get(d.addr, "/echo/a"));
    let mut c = Raw::connect(d.addr);
    c.send(b"GET /raw/abort?bytes=1000 HTTP/1.1\r\nHost: a\r\n\r\n");
    // How the client connection ends is `upstream_abort_mid_body_resets_the_client`'s concern.
    c.read_to_end(Duration::from_secs(10));
    assert!(c.buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let r = get(d.addr, "/echo/b");
    assert_eq!(echoed(&r).target, "/echo/b");
    assert_eq!(echo_conn(&r), (conn + 1, 1));
}

#[test]
fn a_client_leaving_mid_response_does_not_poison_the_pool() {
    let (_e, d) = through_echo_one_worker("");
    let mut c = Raw::connect(d.addr);
    c.send(b"GET /bytes/5242880 HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until_contains(b"\r\n\r\nabc");
    drop(c);
    for k in 0..3 {
        let r = get(d.addr, &format!("/echo/after{k}"));
        assert_eq!(echoed(&r).target, format!("/echo/after{k}"));
        assert_eq!(r.body_str().matches("method: ").count(), 1);
    }
}

/// An upstream whose connections answer one request, then close on the next without a word.
fn one_shot_upstream() -> Upstream {
    Upstream::start(|r| {
        if r.seq == 1 {
            ok(&format!("conn {} seq {} {}", r.conn, r.seq, r.target()))
        } else {
            Reply::Drop
        }
    })
}

#[test]
fn idempotent_request_is_retried_on_a_dead_pooled_connection() {
    let up = one_shot_upstream();
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    assert_eq!(get(d.addr, "/r/1").body_str(), "conn 1 seq 1 /r/1");
    let r = get(d.addr, "/r/2");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "conn 2 seq 1 /r/2");
    // It did go to the dead pooled connection first.
    let seen: Vec<(usize, usize, String)> = (0..3)
        .map(|_| up.next_request(Duration::from_secs(5)).unwrap())
        .map(|q| (q.conn, q.seq, q.target().to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, 1, "/r/1".to_owned()),
            (1, 2, "/r/2".to_owned()),
            (2, 1, "/r/2".to_owned())
        ]
    );
    assert_eq!(up.accepted(), 2);
}

#[test]
fn post_with_a_body_is_not_retried_on_a_dead_pooled_connection() {
    let up = one_shot_upstream();
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    assert_eq!(get(d.addr, "/r/1").body_str(), "conn 1 seq 1 /r/1");
    let r = request(
        d.addr,
        b"POST /r/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_upstream_error(&r, 502, "Bad Gateway", "reset");
    assert_eq!(
        up.accepted(),
        1,
        "the POST was sent again on a new connection"
    );
    let first = up.next_request(Duration::from_secs(5)).unwrap();
    let second = up.next_request(Duration::from_secs(5)).unwrap();
    assert_eq!((second.conn, second.seq, second.target()), (1, 2, "/r/2"));
    assert_eq!(second.body, b"hello");
    assert_eq!(first.target(), "/r/1");
}

/// An upstream that holds `/hold` until released and answers anything else at once.
fn holding_upstream() -> (Upstream, mpsc::Sender<()>) {
    let (tx, gate) = Gate::new();
    let up = Upstream::start(move |r| {
        if r.target() == "/hold" {
            gate.wait(Duration::from_secs(15));
        }
        ok(&format!("conn {} seq {} {}", r.conn, r.seq, r.target()))
    });
    (up, tx)
}

fn limited(up: &Upstream) -> String {
    one_worker(yaml(
        "transport:\n  http:\n    max_conns_per_host: 1\n    dial_timeout: 1s\n",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    ))
}

#[test]
fn at_the_connection_limit_a_request_waits_dial_timeout_then_gets_502() {
    let (up, release) = holding_upstream();
    let d = Dito::start(&limited(&up));
    let mut held = Client::connect(d.addr);
    held.send(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
    let seen = up
        .next_request(Duration::from_secs(10))
        .expect("/hold upstream");
    assert_eq!(seen.target(), "/hold");

    let t = Instant::now();
    let r = get(d.addr, "/second");
    let took = t.elapsed();
    assert_upstream_error(&r, 502, "Bad Gateway", "connection_limit");
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(up.accepted(), 1);

    release.send(()).unwrap();
    assert_eq!(held.read_response().body_str(), "conn 1 seq 1 /hold");
    assert_eq!(get(d.addr, "/third").body_str(), "conn 1 seq 2 /third");
}

#[test]
fn at_the_connection_limit_a_waiter_gets_the_released_connection() {
    let (up, release) = holding_upstream();
    let d = Dito::start(&limited(&up));
    let mut held = Client::connect(d.addr);
    held.send(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        up.next_request(Duration::from_secs(10)).unwrap().target(),
        "/hold"
    );
    let mut waiter = Client::connect(d.addr);
    waiter.send(b"GET /waiter HTTP/1.1\r\nHost: a\r\n\r\n");
    // No readiness signal exists for "waiting in the pool"; if the waiter arrives later it
    // simply finds the connection idle, and the assertions still hold.
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).unwrap();
    assert_eq!(held.read_response().body_str(), "conn 1 seq 1 /hold");
    let r = waiter.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "conn 1 seq 2 /waiter");
}
