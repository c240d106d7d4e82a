//! Proxying, what the client receives back (spec §5): response headers (security headers,
//! response time, upstream order and case, `Content-Length` placement) and the response relay
//! (large bodies, chunked, 204/304/HEAD, redirects, 103 Early Hints, SSE, trailers,
//! close-delimited bodies for HTTP/1.1 and HTTP/1.0).
//!
//! Upstreams are the demo `dito-echo` or scripted ones (`support::upstream`). Everything is
//! real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;

use std::time::{Duration, Instant};

use proxy_common::{
    echoed, find, get_on, head_field, loc, parse_chunked, pattern, through_echo, yaml, Raw,
};
use support::client::{get, Client, Ending};
use support::upstream::{Reply, Upstream};
use support::Dito;

// ---------------------------------------------------------------------------------------------
// Response headers
// ---------------------------------------------------------------------------------------------

fn is_response_time(v: &str) -> bool {
    let Some(num) = v.strip_suffix("ms") else {
        return false;
    };
    let Some((int, frac)) = num.split_once('.') else {
        return false;
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() == 3
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn security_headers_added_when_absent_and_upstream_values_kept() {
    let (_e, d) = through_echo("");
    let r = get(d.addr, "/echo/sec");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(r.header("strict-transport-security"), None);
    let rt = r.header("x-response-time").unwrap();
    assert!(is_response_time(rt), "{rt:?}");

    let r = get(
        d.addr,
        "/headers-out?X-Frame-Options=SAMEORIGIN&Referrer-Policy=no-referrer&X-Content-Type-Options=nosniff",
    );
    assert_eq!(r.status, 200);
    for (name, value) in [
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(r.header_count(name), 1, "{name}: {r:?}");
        assert_eq!(r.header(name), Some(value));
    }
}

#[test]
fn response_headers_keep_upstream_order_and_case() {
    let (_e, d) = through_echo("");
    let r = get(
        d.addr,
        "/headers-out?x-lower=a&X-Upper=b&X-Multi=1&X-Multi=2&Set-Cookie=a%3D1&Set-Cookie=b%3D2",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "OK");
    let added = [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "x-request-id",
        "x-response-time",
        "content-length",
    ];
    let got: Vec<String> = r
        .headers
        .iter()
        .filter(|(n, _)| !added.iter().any(|a| n.eq_ignore_ascii_case(a)))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    let conn = r.header("x-echo-conn").unwrap();
    assert_eq!(
        got,
        [
            format!("X-Echo-Conn: {conn}"),
            "X-Echo-Seq: 1".to_owned(),
            "x-lower: a".to_owned(),
            "X-Upper: b".to_owned(),
            "X-Multi: 1".to_owned(),
            "X-Multi: 2".to_owned(),
            "Set-Cookie: a=1".to_owned(),
            "Set-Cookie: b=2".to_owned(),
            "Content-Type: text/plain".to_owned(),
        ]
    );
    assert_eq!(r.header("content-length"), Some("3"));
    assert_eq!(r.body, b"ok\n");
}

#[test]
fn response_content_length_keeps_its_place_among_upstream_headers() {
    let up = Upstream::start(|_| {
        Reply::Keep(
            b"HTTP/1.1 201 Made It\r\ncontent-length: 2\r\nX-After: 1\r\nETag: \"e\"\r\n\r\nok"
                .to_vec(),
        )
    });
    let d = Dito::start(&yaml("", &[loc("^/", &format!("http://{}", up.addr), "")]));
    let r = get(d.addr, "/x");
    assert_eq!((r.status, r.reason.as_str()), (201, "Made It"));
    let upstream: Vec<String> = r
        .headers
        .iter()
        .filter(|(n, _)| {
            ["content-length", "x-after", "etag"].contains(&n.to_ascii_lowercase().as_str())
        })
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    assert_eq!(
        upstream,
        ["content-length: 2", "X-After: 1", "ETag: \"e\""],
        "{:?}",
        r.headers
    );
    assert_eq!(r.body, b"ok");
}

// ---------------------------------------------------------------------------------------------
// Response relay
// ---------------------------------------------------------------------------------------------

#[test]
fn large_content_length_responses_are_intact() {
    let (_e, d) = through_echo("");
    for n in [200 * 1024, 5 * 1024 * 1024] {
        let r = get(d.addr, &format!("/bytes/{n}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
        assert_eq!(r.header("transfer-encoding"), None);
        assert_eq!(r.body.len(), n);
        assert!(r.body == pattern(n), "/bytes/{n} body differs");
    }
}

#[test]
fn large_chunked_responses_stay_chunked_without_an_invented_length() {
    let (_e, d) = through_echo("");
    for path in [
        "/raw/chunked/204800",
        "/raw/chunked/1000?chunk=1",
        "/chunked/5242880",
    ] {
        let r = get(d.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
        assert_eq!(r.header("content-length"), None, "{path}");
        let n: usize = path
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(r.body == pattern(n), "{path} body differs");
    }
}

#[test]
fn status_204_and_304_keep_status_without_body_or_framing() {
    let (_e, d) = through_echo("");
    let mut c = Client::connect(d.addr);
    for (code, reason) in [(204, "No Content"), (304, "Not Modified")] {
        let r = get_on(&mut c, &format!("/status/{code}"));
        assert_eq!((r.status, r.reason.as_str()), (code, reason));
        assert_eq!(r.header("content-length"), None, "{r:?}");
        assert_eq!(r.header("transfer-encoding"), None, "{r:?}");
        assert!(r.header("x-request-id").is_some());
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        // Nothing follows the head, and the connection stays usable.
        assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
    }
    assert_eq!(echoed(&get_on(&mut c, "/echo/after")).target, "/echo/after");
}

#[test]
fn head_keeps_content_length_and_has_no_body() {
    let (_e, d) = through_echo("");
    let mut c = Client::connect(d.addr);
    c.send(b"HEAD /bytes/100 HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response_for(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(c.ending(Duration::from_millis(300)), Ending::Open);
    let r = get_on(&mut c, "/bytes/3");
    assert_eq!(r.body, b"abc");
}

#[test]
fn redirect_keeps_status_location_and_body() {
    let (_e, d) = through_echo("");
    let r = get(d.addr, "/redirect");
    assert_eq!((r.status, r.reason.as_str()), (302, "Found"));
    assert_eq!(r.header("location"), Some("/echo/redirected"));
    assert_eq!(r.body, b"redirecting to /echo/redirected\n");
}

#[test]
fn early_hints_are_forwarded_before_the_final_response_to_http11_only() {
    let (_e, d) = through_echo("");
    let mut c = Client::connect(d.addr);
    c.send(b"GET /early-hints HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.reason.as_str()), (103, "Early Hints"), "{r:?}");
    assert_eq!(r.header("link"), Some("</style.css>; rel=preload"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"final\n");

    // Never to an HTTP/1.0 client.
    let mut c = Client::connect(d.addr);
    c.send(b"GET /early-hints HTTP/1.0\r\nHost: a\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"final\n");
}

#[test]
fn sse_event_one_arrives_before_event_two_is_sent() {
    let (_e, d) = through_echo("");
    let mut c = Raw::connect(d.addr);
    let t = Instant::now();
    c.send(b"GET /sse?events=2&interval_ms=1000 HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until_contains(b"data: event 1\n\n");
    let first = t.elapsed();
    assert!(
        first < Duration::from_millis(600),
        "event 1 after {first:?}"
    );
    assert!(find(&c.buf, b"event 2").is_none());
    let (head, _) = c.head_and_rest();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(head_field(&head, "content-type"), ["text/event-stream"]);
    assert_eq!(head_field(&head, "transfer-encoding"), ["chunked"]);
    c.read_until_contains(b"data: event 2\n\n");
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    c.read_until("the last chunk", |b| {
        let end = find(b, b"\r\n\r\n").unwrap() + 4;
        parse_chunked(&b[end..]).is_some()
    });
    let (_, rest) = c.head_and_rest();
    let (data, trailers, used) = parse_chunked(&rest).unwrap();
    assert_eq!(data, b"data: event 1\n\ndata: event 2\n\n");
    assert!(trailers.is_empty());
    assert_eq!(used, rest.len());
}

#[test]
fn trailers_are_forwarded_with_the_chunked_body() {
    let (_e, d) = through_echo("");
    let mut c = Raw::connect(d.addr);
    c.send(b"GET /trailers HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until("the trailer section", |b| {
        find(b, b"\r\n\r\n").is_some_and(|end| parse_chunked(&b[end + 4..]).is_some())
    });
    let (head, rest) = c.head_and_rest();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(head_field(&head, "transfer-encoding"), ["chunked"]);
    assert_eq!(head_field(&head, "trailer"), ["X-Checksum"]);
    assert!(head_field(&head, "content-length").is_empty(), "{head}");
    let (data, trailers, used) = parse_chunked(&rest).unwrap();
    assert_eq!(data, b"hello\n");
    assert_eq!(String::from_utf8_lossy(&trailers), "X-Checksum: abc123\r\n");
    assert_eq!(used, rest.len(), "bytes after the body");
}

#[test]
fn close_delimited_body_becomes_chunked_for_http11() {
    let (_e, d) = through_echo("");
    for (path, n) in [("/raw/close/70000", 70_000), ("/close/3000000", 3_000_000)] {
        let r = get(d.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
        assert_eq!(r.header("content-length"), None, "{path}");
        assert!(r.body == pattern(n), "{path} body differs");
    }
}

#[test]
fn unknown_length_bodies_are_close_delimited_for_http10() {
    let (_e, d) = through_echo("");
    for path in ["/raw/close/70000", "/raw/chunked/70000"] {
        let mut c = Client::connect(d.addr);
        c.send(format!("GET {path} HTTP/1.0\r\nHost: a\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("transfer-encoding"), None, "{path}: {r:?}");
        assert_eq!(r.header("content-length"), None, "{path}: {r:?}");
        assert!(r.body == pattern(70_000), "{path} body differs");
        assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
    }
}
