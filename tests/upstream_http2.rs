//! HTTP/2 upstreams (`transport.http.force_http2: true`), black-box: the real binary in front
//! of the HTTP/2-only test upstream of `support::h2_upstream` (prior knowledge on plain TCP,
//! or TLS with ALPN `h2`). What reaches the upstream (`version: HTTP/2.0`, `:authority`,
//! `:scheme`, the forwarding fields, no hop-by-hop fields), one multiplexed connection per
//! worker (in `upstream_http2_conns.rs`, with the stream limits, GOAWAY and idle close),
//! bodies both ways, a stream reset mid-body, clients leaving mid-upload and mid-download
//! (the upstream stream is cancelled), HTTP/1.1-only upstreams (502 `invalid_response`), a
//! failed shared connect, `dito check`, and the response header timeout.
//!
//! Clients are the raw HTTP/1.1 client of `support::client` and, in one test, the h2 client of
//! `support::h2client` (h2c with prior knowledge to Dito).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;
mod upstream_http2_common;

use upstream_http2_common::*;

// ---------------------------------------------------------------------------------------------
// 1, 2: what reaches the upstream
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_target_gets_http2_with_prior_knowledge_and_forwarding_fields() {
    let up = H2Upstream::plain();
    let d = dito_h2(&up.url());
    let r = request(
        d.addr,
        b"GET /echo/x?q=1 HTTP/1.1\r\nHost: front.example\r\nConnection: keep-alive, x-drop\r\n\
          X-Drop: 1\r\nKeep-Alive: 5\r\nUser-Agent: t/1\r\nX-Keep: 1\r\n\r\n",
    );
    assert_eq!(
        r.status,
        200,
        "{r:?}\nupstream failures: {:?}",
        up.failures()
    );
    assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
    let ec = Echoed::parse(&r);
    assert_eq!(ec.version, "HTTP/2.0");
    assert_eq!(ec.method, "GET");
    assert_eq!(ec.target, "/echo/x?q=1");
    assert_eq!(ec.scheme, "http");
    // `Host` becomes `:authority`: the target's host and port.
    assert_eq!(ec.authority, up.authority());
    for host in ec.all("host") {
        assert_eq!(
            host,
            up.authority(),
            "a Host field differing from :authority"
        );
    }
    assert_eq!(ec.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(ec.one("x-forwarded-host"), "front.example");
    assert_eq!(ec.one("x-forwarded-proto"), "http");
    let id = ec.one("x-request-id");
    assert!(is_hex32(id), "{id:?}");
    assert_eq!(r.header("x-request-id"), Some(id));
    assert_eq!(ec.one("user-agent"), "t/1");
    assert_eq!(ec.one("x-keep"), "1");
    for name in [
        "connection",
        "keep-alive",
        "x-drop",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(
            ec.all(name).is_empty(),
            "{name} reached the upstream: {:?}",
            ec.headers
        );
    }
    // The upstream's own record agrees with what it echoed.
    let seen = up.seen_path("/echo/x");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].authority, up.authority());
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/echo/x?q=1")
    );

    // Body and status relayed.
    let r = get(d.addr, "/bytes/5000");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == pattern(5000), "body differs");
    let mut c = Client::connect(d.addr);
    c.send(b"HEAD /bytes/100 HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response_for(true);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some("100"), "{r:?}");
    assert_eq!(
        c.ending(Duration::from_millis(200)),
        Ending::Open,
        "bytes after a HEAD"
    );
    assert_eq!(up.seen_path("/bytes/100")[0].method, "HEAD");
    let r = get_close(d.addr, "/status/404");
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    let r = get(d.addr, "/nothing-here");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body_str(), "no such endpoint: /nothing-here\n");
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn https_target_gets_http2_over_tls_with_alpn_h2_from_the_global_transport() {
    let pki = Pki::new();
    let up = H2Upstream::tls(&pki);
    // force_http2 and ca_file in the global `transport.http` this time.
    let top = format!(
        "transport:\n  http:\n    force_http2: true\n    ca_file: '{}'\n",
        pki.ca.display()
    );
    // A location setting only `ca_file` keeps the global `force_http2`.
    let other = format!(
        "    transport:\n      http:\n        ca_file: '{}'\n",
        pki.other_ca.display()
    );
    let d = Dito::start(&yaml(
        &top,
        &[
            loc("^/other-ca/", &format!("{}/", up.url()), &other),
            loc("^/", &up.url(), ""),
        ],
    ));
    let r = get(d.addr, "/other-ca/echo/x");
    assert_upstream_error(&r, 502, "Bad Gateway", "tls_unknown_ca");
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    let r = get(d.addr, "/echo/tls?a=b");
    assert_eq!(
        r.status,
        200,
        "{r:?}\nupstream failures: {:?}",
        up.failures()
    );
    let ec = Echoed::parse(&r);
    assert_eq!(ec.version, "HTTP/2.0");
    assert_eq!(ec.scheme, "https");
    assert_eq!(ec.target, "/echo/tls?a=b");
    assert_eq!(ec.authority, up.authority());
    assert_eq!(ec.one("x-forwarded-proto"), "http");
    let r = get(d.addr, "/bytes/70000");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body == pattern(70_000), "body differs");
    // The refused handshake of `/other-ca/` is the upstream's only failure.
    let failures = up.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("tls"), "{failures:?}");
}

// ---------------------------------------------------------------------------------------------
// 5, 6: bodies and a reset mid-body
// ---------------------------------------------------------------------------------------------

#[test]
fn request_and_response_bodies_arrive_intact() {
    let up = H2Upstream::plain();
    let d = dito_h2(&up.url());

    // 1 MiB with Content-Length.
    let data = pattern(1 << 20);
    let mut c = Client::connect(d.addr);
    c.send(
        format!(
            "POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\n\r\n",
            data.len()
        )
        .as_bytes(),
    );
    c.send(&data);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "1 MiB body differs");

    // Chunked, on the same client connection.
    let chunked = pattern(300_000);
    c.send(b"POST /echo-body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in chunked.chunks(7_000) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes());
        c.send(piece);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.len(), chunked.len());
    assert!(r.body == chunked, "chunked body differs");

    // Larger than every flow-control window on the way back.
    let r = get(d.addr, "/bytes/3000000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3_000_000);
    assert!(r.body == pattern(3_000_000), "3 MB body differs");

    // No content-length from the upstream.
    let r = get(d.addr, "/nolength/200000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 200_000);
    assert!(r.body == pattern(200_000), "unknown-length body differs");

    let posts = up.seen_path("/echo-body");
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(posts.iter().all(|s| s.method == "POST"));
    assert!(
        posts.iter().all(|s| s.all("transfer-encoding").is_empty()),
        "{posts:?}"
    );
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn chunked_trailers_and_expect_continue() {
    let up = H2Upstream::plain();
    let d = dito_h2(&up.url());
    // Chunked trailers become trailing HEADERS.
    let mut c = Client::connect(d.addr);
    c.send(
        b"POST /echo/t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n\
          5\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n",
    );
    let r = c.read_response();
    let ec = Echoed::parse(&r);
    assert_eq!(ec.body_length, 5, "{ec:?}");
    assert_eq!(ec.trailers, ["x-trailer: yes"], "{ec:?}");
    assert!(ec.all("transfer-encoding").is_empty(), "{ec:?}");
    assert_eq!(ec.all("te"), ["trailers"], "{ec:?}");
    // `Expect: 100-continue` is answered by Dito; the upstream does not see it.
    let mut raw = Raw::connect(d.addr);
    raw.send(
        b"POST /echo/e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    raw.read_until_contains(b"\r\n\r\n");
    assert!(
        raw.buf.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{:?}",
        String::from_utf8_lossy(&raw.buf)
    );
    raw.buf.clear();
    raw.send(b"hello");
    raw.read_until_contains(b"body-length: 5\n");
    let text = String::from_utf8_lossy(&raw.buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("header: expect:"),
        "{text}"
    );
}

#[test]
fn upstream_reset_mid_body_cuts_the_client_response() {
    let up = H2Upstream::plain();
    let d = dito_h2(&up.url());
    let mut c = Raw::connect(d.addr);
    c.send(b"GET /reset-mid-body HTTP/1.1\r\nHost: a\r\n\r\n");
    let ending = c.read_to_end(Duration::from_secs(10));
    let (head, rest) = c.head_and_rest();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(head_field(&head, "content-length"), ["1000000"], "{head}");
    assert!(rest.len() < 1_000_000, "{} body bytes", rest.len());
    assert!(rest == pattern(rest.len()), "body differs from the pattern");
    assert_ne!(
        ending,
        Ending::Open,
        "the connection stayed open after {} of 1000000 bytes",
        rest.len()
    );
    // The next request, on a new client connection, works.
    let r = get(d.addr, "/echo/after");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(Echoed::parse(&r).version, "HTTP/2.0");
}

#[test]
fn a_client_leaving_mid_upload_cancels_its_upstream_stream() {
    // Limit 3: streams left open by abandoned uploads would soon block the connection.
    let up = H2Upstream::start(None, Opts::plain().max_concurrent_streams(3));
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    for i in 1..=4 {
        let mut c = Client::connect(d.addr);
        c.send(b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
        c.send(&pattern(20_000));
        assert!(
            eventually(Duration::from_secs(5), || up.seen_path("/echo-body").len()
                == i),
            "upload {i} never reached the upstream: {:?}",
            up.seen()
        );
        drop(c);
        assert!(
            eventually(Duration::from_secs(5), || up.open_streams() == 0),
            "upload {i}: {} upstream streams still open after the client left",
            up.open_streams()
        );
    }
    let r = get(d.addr, "/echo/after");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(up.accepted(), 1, "connections to the upstream");
}

#[test]
fn a_client_leaving_mid_download_cancels_its_upstream_stream() {
    let up = H2Upstream::plain();
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    for i in 1..=3 {
        let mut c = Raw::connect(d.addr);
        c.send(b"GET /bytes/50000000 HTTP/1.1\r\nHost: a\r\n\r\n");
        c.read_until_contains(b"\r\n\r\n");
        assert!(
            c.buf.starts_with(b"HTTP/1.1 200 "),
            "{:?}",
            String::from_utf8_lossy(&c.buf)
        );
        drop(c);
        assert!(
            eventually(Duration::from_secs(5), || up.open_streams() == 0),
            "download {i}: {} upstream streams still open after the client left",
            up.open_streams()
        );
    }
    let r = get(d.addr, "/bytes/1000");
    assert!(r.status == 200 && r.body == pattern(1000), "{r:?}");
    assert_eq!(up.accepted(), 1, "connections to the upstream");
}

// ---------------------------------------------------------------------------------------------
// 7: upstreams that speak only HTTP/1.1
// ---------------------------------------------------------------------------------------------

#[test]
fn http1_only_upstream_is_502_invalid_response() {
    let e = Echo::start();
    let d = dito_h2(&format!("http://{}", e.addr));
    for path in ["/echo/a", "/bytes/10"] {
        let r = get(d.addr, path);
        assert_upstream_error(&r, 502, "Bad Gateway", "invalid_response");
    }
}

#[test]
fn https_upstream_without_h2_is_502_invalid_response() {
    // The rustls upstream of `support::https_upstream` negotiates no ALPN protocol and
    // answers every request head with HTTP/1.1.
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, https_upstream::Opts::new(&pki));
    let ca = format!("ca_file: '{}'", pki.ca.display());
    let d = Dito::start(&yaml("", &[loc("^/", &up.url_ip(), &h2_loc(&[&ca]))]));
    let r = get(d.addr, "/x");
    assert_upstream_error(&r, 502, "Bad Gateway", "invalid_response");
    // Never an HTTP/1.1 request: at most the HTTP/2 preface read as a request head.
    let seen = up.seen();
    assert!(
        seen.iter().all(|s| s.target != "/x"),
        "an HTTP/1.1 request reached the upstream: {seen:?}"
    );
}

#[test]
fn concurrent_first_requests_share_a_failed_connect() {
    // Requests waiting for one connection attempt all get its failure, none hangs.
    let port = proxy_common::closed_port();
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://127.0.0.1:{port}"), &h2_loc(&[]))],
    )));
    let start = Instant::now();
    for r in concurrent_gets(d.addr, 10, "/echo/x") {
        assert_upstream_error(&r, 502, "Bad Gateway", "connect_refused");
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // And the next attempt is a new one.
    assert_upstream_error(&get(d.addr, "/"), 502, "Bad Gateway", "connect_refused");
}

// ---------------------------------------------------------------------------------------------
// 8: config
// ---------------------------------------------------------------------------------------------

#[test]
fn check_accepts_force_http2_globally_and_per_location() {
    let dir = support::temp_dir();
    let cases = [
        (
            "global",
            "transport:\n  http:\n    force_http2: true\nlocations:\n  - path: ^/\n    target_url: http://127.0.0.1:9\n",
        ),
        (
            "location",
            "locations:\n  - path: ^/\n    target_url: http://127.0.0.1:9\n    transport:\n      http:\n        force_http2: true\n",
        ),
    ];
    for (what, yaml) in cases {
        let file = support::write_file(&dir, &format!("{what}.yaml"), yaml);
        let out = support::run_dito(&["check", "-f", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("not supported yet"), "{what}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    // And the server starts with it.
    let up = H2Upstream::plain();
    let d = Dito::try_start(&yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))]));
    let d = d.unwrap_or_else(|f| panic!("dito did not start: {f:?}"));
    assert!(!d.output().contains("not supported yet"), "{}", d.output());
}

// ---------------------------------------------------------------------------------------------
// 9: response header timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn response_header_timeout_is_504() {
    let up = H2Upstream::plain();
    let t = h2_loc(&["response_header_timeout: 500ms"]);
    let d = Dito::start(&yaml("request_timeout: 20s\n", &[loc("^/", &up.url(), &t)]));
    let start = Instant::now();
    let r = get(d.addr, "/slow-head?ms=3000");
    let took = start.elapsed();
    assert_upstream_error(&r, 504, "Gateway Timeout", "response_header_timeout");
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // The next request is served normally.
    let r = get(d.addr, "/echo/next");
    assert_eq!(Echoed::parse(&r).target, "/echo/next");
}
