//! Proxying, what the upstream receives (spec §3, §4): the upstream request headers (client
//! order kept, `X-Forwarded-*`, hop-by-hop and `Connection`-named removal, `TE`, excluded and
//! additional headers, `Host`, request ids both ways) and request bodies (JSON/form, 1 MiB
//! binary, chunked with extensions and trailers, `Expect: 100-continue`).
//!
//! Upstreams are the demo `dito-echo` (its `/echo` body describes the request it received) or
//! scripted ones (`support::upstream`). Everything is real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy_common::{echoed, fnv64, get_on, is_hex32, loc, pattern, through_echo, yaml};
use support::client::{get, request, Client, Ending, Resp};
use support::upstream::{ok, Upstream};
use support::{Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Upstream request headers
// ---------------------------------------------------------------------------------------------

#[test]
fn upstream_request_keeps_client_headers_in_order_and_adds_forwarding_fields() {
    let (e, d) = through_echo("");
    let r = request(
        d.addr,
        b"GET /echo/h?q=1 HTTP/1.1\r\nHost: front.example:8443\r\nUser-Agent: t/1\r\n\
          X-Multi: 1\r\nx-lower: v\r\nX-Multi: 2\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    let ec = echoed(&r);
    assert_eq!(ec.method, "GET");
    assert_eq!(ec.target, "/echo/h?q=1");
    assert_eq!(ec.version, "HTTP/1.1");
    assert_eq!(
        ec.others(),
        [
            "User-Agent: t/1",
            "X-Multi: 1",
            "x-lower: v",
            "X-Multi: 2",
            "Accept-Encoding: gzip"
        ]
    );
    assert_eq!(ec.one("host"), e.addr.to_string());
    assert_eq!(ec.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(ec.one("x-forwarded-host"), "front.example:8443");
    assert_eq!(ec.one("x-forwarded-proto"), "http");
    let id = ec.one("x-request-id");
    assert!(is_hex32(id), "{id:?}");
    assert_eq!(r.header("x-request-id"), Some(id));
    assert!(!ec.has("via") && !ec.has("connection"), "{:?}", ec.headers);
}

#[test]
fn x_forwarded_for_appends_to_the_client_chain_and_client_host_proto_are_replaced() {
    let (_e, d) = through_echo("");
    let r = request(
        d.addr,
        b"GET /echo/xff HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-For: 203.0.113.7\r\n\
          X-Forwarded-Host: evil.example\r\nx-forwarded-for: 198.51.100.1, 10.0.0.1\r\n\
          X-Forwarded-Proto: https\r\nX-After: 1\r\n\r\n",
    );
    let ec = echoed(&r);
    assert_eq!(
        ec.one("x-forwarded-for"),
        "203.0.113.7, 198.51.100.1, 10.0.0.1, 127.0.0.1"
    );
    assert_eq!(ec.one("x-forwarded-host"), "front.example");
    assert_eq!(ec.one("x-forwarded-proto"), "http");
    assert_eq!(ec.others(), ["X-After: 1"]);
}

#[test]
fn absolute_form_authority_is_the_forwarded_host() {
    let (_e, d) = through_echo("");
    let r = request(
        d.addr,
        b"GET http://abs.example:81/echo/abs?z=9 HTTP/1.1\r\nHost: abs.example:81\r\n\r\n",
    );
    let ec = echoed(&r);
    assert_eq!(ec.target, "/echo/abs?z=9");
    assert_eq!(ec.one("x-forwarded-host"), "abs.example:81");
}

#[test]
fn hop_by_hop_and_connection_named_headers_are_removed() {
    let (_e, d) = through_echo("");
    let r = request(
        d.addr,
        b"GET /echo/hop HTTP/1.1\r\nHost: front.example\r\nConnection: keep-alive, x-drop\r\n\
          X-Drop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
          Proxy-Authorization: Basic YTpi\r\nProxy-Authenticate: Basic\r\n\
          TE: gzip, trailers\r\nTrailer: X-T\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\
          Upgrade: h2c\r\nX-Keep: 1\r\n\r\n",
    );
    let ec = echoed(&r);
    assert_eq!(
        ec.others(),
        // The kept `TE: trailers` is named in Dito's own `Connection` (RFC 9110 §10.1.4).
        ["TE: trailers", "X-Keep: 1", "Connection: TE"],
        "{:?}",
        ec.headers
    );
}

#[test]
fn te_without_trailers_is_removed() {
    let (_e, d) = through_echo("");
    let r = request(
        d.addr,
        b"GET /echo/te HTTP/1.1\r\nHost: a\r\nTE: gzip\r\nX-Keep: 1\r\n\r\n",
    );
    assert_eq!(echoed(&r).others(), ["X-Keep: 1"]);
}

#[test]
fn connection_cannot_remove_ditos_own_headers() {
    let (_e, d) = through_echo("");
    let r = request(
        d.addr,
        b"GET /echo/c HTTP/1.1\r\nHost: front.example\r\n\
          Connection: X-Forwarded-For, X-Forwarded-Proto, X-Other\r\n\
          X-Forwarded-For: 9.9.9.9\r\nX-Forwarded-Proto: https\r\nX-Other: o\r\nX-Stay: s\r\n\r\n",
    );
    let ec = echoed(&r);
    assert_eq!(ec.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(ec.one("x-forwarded-proto"), "http");
    assert_eq!(ec.one("x-forwarded-host"), "front.example");
    assert_eq!(ec.others(), ["X-Stay: s"]);
}

#[test]
fn excluded_and_additional_headers_are_case_insensitive() {
    let e = Echo::start();
    let extra = "    excluded_headers: ['x-secret', 'COOKIE']\n    additional_headers:\n      \
                 X-Added: 'yes'\n      x-keep: 'replaced'\n";
    let d = Dito::start(&yaml(
        "",
        &[loc("^/", &format!("http://{}", e.addr), extra)],
    ));
    let r = request(
        d.addr,
        b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Secret: s\r\nCookie: c=1\r\nX-KEEP: orig\r\n\
          X-Other: o\r\nx-SECRET: s2\r\ncookie: c=2\r\n\r\n",
    );
    let ec = echoed(&r);
    assert!(!ec.has("x-secret") && !ec.has("cookie"), "{:?}", ec.headers);
    assert_eq!(ec.one("x-keep"), "replaced");
    assert_eq!(ec.one("x-added"), "yes");
    let rest: Vec<String> = ec
        .others()
        .into_iter()
        .filter(|h| {
            let l = h.to_ascii_lowercase();
            !l.starts_with("x-keep:") && !l.starts_with("x-added:")
        })
        .collect();
    assert_eq!(rest, ["X-Other: o"]);
}

#[test]
fn additional_headers_host_overrides_the_target_host() {
    let e = Echo::start();
    let extra = "    additional_headers:\n      hOST: 'virtual.example'\n";
    let d = Dito::start(&yaml(
        "",
        &[loc("^/", &format!("http://{}", e.addr), extra)],
    ));
    let r = request(
        d.addr,
        b"GET /echo/v HTTP/1.1\r\nHost: front.example\r\n\r\n",
    );
    let ec = echoed(&r);
    assert_eq!(ec.one("host"), "virtual.example");
    assert_eq!(ec.one("x-forwarded-host"), "front.example");
}

#[test]
fn host_is_the_target_authority_as_written_ipv6_in_brackets() {
    let up = Upstream::bind("[::1]:0", |r| ok(r.header("host").unwrap_or("")));
    let port = up.addr.port();
    let d = Dito::start(&yaml(
        "",
        &[loc("^/", &format!("http://[::1]:{port}/v6"), "")],
    ));
    let r = get(d.addr, "/x");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), format!("[::1]:{port}"));
    let seen = up.next_request(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.target(), "/v6/x");
}

#[test]
fn request_id_is_generated_or_propagated_both_ways() {
    let (_e, d) = through_echo("");
    // Generated: 32 lowercase hex, the same upstream and in the response.
    let r = get(d.addr, "/echo/id");
    let id = r.header("x-request-id").unwrap();
    assert!(is_hex32(id), "{id:?}");
    assert_eq!(echoed(&r).one("x-request-id"), id);
    // Two requests get two different ids.
    let r2 = get(d.addr, "/echo/id");
    assert_ne!(r2.header("x-request-id"), Some(id));
    // Propagated.
    let r = request(
        d.addr,
        b"GET /echo/id HTTP/1.1\r\nHost: a\r\nX-Request-ID: client-id.42\r\n\r\n",
    );
    assert_eq!(r.header_count("x-request-id"), 1);
    assert_eq!(r.header("x-request-id"), Some("client-id.42"));
    assert_eq!(echoed(&r).one("x-request-id"), "client-id.42");
    // Invalid (129 characters) → replaced by a generated one, consistently.
    let long = "a".repeat(129);
    let r = request(
        d.addr,
        format!("GET /echo/id HTTP/1.1\r\nHost: a\r\nX-Request-ID: {long}\r\n\r\n").as_bytes(),
    );
    let id = r.header("x-request-id").unwrap();
    assert!(is_hex32(id), "{id:?}");
    assert_eq!(echoed(&r).one("x-request-id"), id);
    // An upstream X-Request-ID is replaced by Dito's value.
    let r = request(
        d.addr,
        b"GET /headers-out?X-Request-ID=upstream-id HTTP/1.1\r\nHost: a\r\nX-Request-ID: cid\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header_count("x-request-id"), 1, "{r:?}");
    assert_eq!(r.header("x-request-id"), Some("cid"));
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Resp {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    request(addr, &raw)
}

#[test]
fn json_and_form_bodies_are_byte_identical() {
    let (_e, d) = through_echo("");
    let cases: [(&str, &[u8]); 2] = [
        (
            "application/json",
            "{\"a\":[1,2,{\"b\":\"\u{fc}\\u0000\"}],\"c\":null,\"d\":\"\\r\\n\"}\n".as_bytes(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"a=1&b=%20x+y&c=%F0%9F%98%80&d=&e",
        ),
    ];
    for (ct, body) in cases {
        let r = post(d.addr, "/echo-body", ct, body);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(ct));
        assert_eq!(r.body, body, "{ct}");
        let ec = echoed(&post(d.addr, "/echo/b", ct, body));
        assert_eq!(ec.method, "POST");
        assert_eq!(ec.body_length, body.len());
        assert_eq!(ec.body_fnv64, fnv64(body));
        assert_eq!(ec.one("content-length"), body.len().to_string());
        assert_eq!(ec.one("content-type"), ct);
    }
}

#[test]
fn one_mib_binary_body_round_trips() {
    let (_e, d) = through_echo("");
    let body: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut c = Client::connect(d.addr);
    c.send(
        format!(
            "PUT /echo-body HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    // Written in pieces, so Dito streams rather than receiving one read.
    for piece in body.chunks(100_000) {
        c.send(piece);
    }
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert!(r.body == body, "1 MiB body differs");
}

#[test]
fn chunked_upload_with_extensions_and_trailers_arrives_intact() {
    let (_e, d) = through_echo("");
    let mut c = Client::connect(d.addr);
    c.send(b"POST /echo/up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut body = Vec::new();
    let pieces: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        b" world, \x00\xff binary".to_vec(),
        pattern(70_000),
        vec![b'z'; 1],
    ];
    for (i, p) in pieces.iter().enumerate() {
        c.send(format!("{:x};ext{i}=v\r\n", p.len()).as_bytes());
        c.send(p);
        c.send(b"\r\n");
        body.extend_from_slice(p);
    }
    c.send(b"0\r\nX-Sum: 42\r\n\r\n");
    let ec = echoed(&c.read_response());
    assert_eq!(ec.body_length, body.len());
    assert_eq!(ec.body_fnv64, fnv64(&body));
    // Re-framed: exactly one framing header upstream.
    assert_eq!(
        usize::from(ec.has("content-length")) + usize::from(ec.has("transfer-encoding")),
        1,
        "{:?}",
        ec.headers
    );
    // The connection stays usable.
    let ec = echoed(&get_on(&mut c, "/echo/next"));
    assert_eq!(ec.target, "/echo/next");
}

#[test]
fn expect_100_continue_is_relayed_from_the_upstream() {
    // Dito's own 100 would only come after 10 s.
    let (_e, d) = through_echo("transport:\n  http:\n    expect_continue_timeout: 10s\n");
    let mut c = Client::connect(d.addr);
    let t = Instant::now();
    c.send(
        b"POST /echo/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!((r.status, r.reason.as_str()), (100, "Continue"), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "100 after {:?}",
        t.elapsed()
    );
    c.send(b"hello");
    let r = c.read_response();
    let ec = echoed(&r);
    assert_eq!(ec.body_length, 5);
    assert_eq!(ec.body_fnv64, fnv64(b"hello"));
    assert_eq!(ec.one("expect"), "100-continue");
}

#[test]
fn expect_answered_with_a_final_status_is_relayed_and_the_connection_ends() {
    let (_e, d) = through_echo("transport:\n  http:\n    expect_continue_timeout: 10s\n");
    let mut c = Client::connect(d.addr);
    c.send(
        b"POST /expect-reject HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"dito-echo\"")
    );
    assert_eq!(r.body, b"unauthorized\n");
    assert_eq!(c.ending(Duration::from_secs(5)), Ending::Closed);
}
