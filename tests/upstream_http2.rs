//! HTTP/2 upstreams (`transport.http.force_http2: true`), black-box: the real binary in front
//! of the HTTP/2-only test upstream of `support::h2_upstream` (prior knowledge on plain TCP,
//! or TLS with ALPN `h2`). What reaches the upstream (`version: HTTP/2.0`, `:authority`,
//! `:scheme`, the forwarding fields, no hop-by-hop fields), one multiplexed connection per
//! worker, the server's `max_concurrent_streams` (also before its SETTINGS arrive), GOAWAY,
//! bodies both ways, a stream reset mid-body, clients leaving mid-upload and mid-download
//! (the upstream stream is cancelled), HTTP/1.1-only upstreams (502 `invalid_response`), a
//! failed shared connect, `dito check`, and the response header timeout.
//!
//! Clients are the raw HTTP/1.1 client of `support::client` and, in one test, the h2 client of
//! `support::h2client` (h2c with prior knowledge to Dito).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use proxy_common::{
    assert_upstream_error, get_on, head_field, is_hex32, loc, one_worker, pattern, yaml, Raw,
};
use support::client::{get, request, Client, Ending, Resp};
use support::h2_upstream::{H2Upstream, Opts};
use support::https_upstream::{self, HttpsUpstream};
use support::tls::Pki;
use support::{Dito, Echo};

/// The per-location `transport.http` block turning HTTP/2 on, plus further `extra` keys
/// (each `key: value`).
fn h2_loc(extra: &[&str]) -> String {
    let mut s = "    transport:\n      http:\n        force_http2: true\n".to_owned();
    for kv in extra {
        s.push_str(&format!("        {kv}\n"));
    }
    s
}

/// Dito with one location `^/` → `target` with `force_http2` on it.
fn dito_h2(target: &str) -> Dito {
    Dito::start(&yaml("", &[loc("^/", target, &h2_loc(&[]))]))
}

/// What the h2 upstream's `/echo` reported.
#[derive(Debug)]
struct Echoed {
    method: String,
    target: String,
    version: String,
    authority: String,
    scheme: String,
    headers: Vec<(String, String)>,
    body_length: usize,
    trailers: Vec<String>,
}

impl Echoed {
    fn parse(r: &Resp) -> Echoed {
        assert_eq!(r.status, 200, "not an echo answer: {r:?}");
        let mut e = Echoed {
            method: String::new(),
            target: String::new(),
            version: String::new(),
            authority: String::new(),
            scheme: String::new(),
            headers: Vec::new(),
            body_length: usize::MAX,
            trailers: Vec::new(),
        };
        for line in r.body_str().lines() {
            let (k, v) = line.split_once(": ").unwrap_or((line, ""));
            match k {
                "method" => e.method = v.to_owned(),
                "target" => e.target = v.to_owned(),
                "version" => e.version = v.to_owned(),
                "authority" => e.authority = v.to_owned(),
                "scheme" => e.scheme = v.to_owned(),
                "header" => {
                    let (n, v) = v.split_once(": ").unwrap_or((v, ""));
                    e.headers.push((n.to_owned(), v.to_owned()));
                }
                "body-length" => e.body_length = v.parse().unwrap(),
                "trailer" => e.trailers.push(v.to_owned()),
                _ => panic!("unexpected echo line {line:?} in {r:?}"),
            }
        }
        e
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a header that must occur exactly once.
    fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name} upstream: {:?}", self.headers);
        all[0]
    }
}

/// `GET path` on a new connection with `Connection: close` (so a response without a length
/// still ends).
fn get_close(addr: std::net::SocketAddr, path: &str) -> Resp {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Runs `n` client connections at once, each sending `GET path` after all are connected;
/// every response.
fn concurrent_gets(addr: std::net::SocketAddr, n: usize, path: &str) -> Vec<Resp> {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            let path = path.to_owned();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                c.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
                c.read_response()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

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
// 3, 4: multiplexing and the server's stream limit
// ---------------------------------------------------------------------------------------------

#[test]
fn one_worker_multiplexes_concurrent_requests_on_one_connection() {
    let up = H2Upstream::plain();
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let rs = concurrent_gets(d.addr, 40, "/hold?ms=200");
    for r in &rs {
        assert_eq!(
            r.status,
            200,
            "{r:?}\nupstream failures: {:?}",
            up.failures()
        );
        assert_eq!(r.body_str(), "ok");
    }
    assert_eq!(up.seen_path("/hold").len(), 40);
    assert_eq!(up.accepted(), 1, "connections to the upstream");
    assert!(
        up.max_open_streams() > 1,
        "never more than {} stream open at once: not multiplexed",
        up.max_open_streams()
    );
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn h2_client_to_h2_upstream_concurrent_streams() {
    use support::h2client::{connect, echo_line, read_reply, req, run};
    let up = H2Upstream::plain();
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    run(async {
        let (client, _) = connect(d.addr).await;
        let mut pending = Vec::new();
        for i in 0..20usize {
            let mut c = client.clone().ready().await.unwrap();
            let path = if i % 2 == 0 {
                "/hold?ms=200".to_owned()
            } else {
                format!("/bytes/{}", 1000 + i * 977)
            };
            let (resp, _) = c
                .send_request(req("GET", &path).body(()).unwrap(), true)
                .unwrap();
            pending.push((path, tokio::spawn(read_reply(resp))));
        }
        for (path, task) in pending {
            let r = task.await.unwrap().unwrap();
            assert_eq!(r.status, 200, "{path}");
            match path.strip_prefix("/bytes/") {
                Some(n) => assert!(r.body == pattern(n.parse().unwrap()), "{path}"),
                None => assert_eq!(r.text(), "ok"),
            }
        }
        let mut c = client.clone().ready().await.unwrap();
        let request = req("GET", "/echo/h2?x=1")
            .header("x-from-h2", "yes")
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(request, true).unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 200);
        let text = r.text();
        assert_eq!(echo_line(&text, "version: "), ["HTTP/2.0"]);
        assert_eq!(echo_line(&text, "target: "), ["/echo/h2?x=1"]);
        assert_eq!(echo_line(&text, "authority: "), [up.authority().as_str()]);
        let headers = echo_line(&text, "header: ");
        assert!(headers.contains(&"x-from-h2: yes"), "{headers:?}");
        assert!(
            headers.contains(&"x-forwarded-host: front.example"),
            "{headers:?}"
        );
    });
    assert_eq!(up.accepted(), 1, "connections to the upstream");
    assert!(up.max_open_streams() > 1, "not multiplexed");
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn the_servers_max_concurrent_streams_is_respected() {
    let up = H2Upstream::start(None, Opts::plain().max_concurrent_streams(3));
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let rs = concurrent_gets(d.addr, 15, "/hold?ms=100");
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|&s| s == 200),
        "{statuses:?}\n{:?}\nupstream failures: {:?}",
        rs.iter().find(|r| r.status != 200),
        up.failures()
    );
    assert!(rs.iter().all(|r| r.body_str() == "ok"));
    // The upstream's h2 server refuses streams over its limit itself (REFUSED_STREAM): a Dito
    // that ignored the limit shows up as failed requests above, or as streams opened here.
    assert_eq!(up.seen_path("/hold").len(), 15, "{:?}", up.seen());
    assert!(
        up.max_open_streams_per_connection() <= 3,
        "{} streams open at once on one connection",
        up.max_open_streams_per_connection()
    );
    // With one worker and one pool, the limit queues requests rather than opening a new
    // connection per request.
    assert!(up.accepted() < 15, "{} connections", up.accepted());
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn the_servers_limit_holds_before_its_settings_arrive() {
    // The server's SETTINGS (limit 3) leave 150 ms after the connection: meanwhile the 15
    // requests are queued. Opening all of them at once on the new connection exceeds the
    // limit; the server refuses the excess (REFUSED_STREAM, RFC 9113 §5.1.2), which is never
    // the client's answer: the streams must wait for the SETTINGS (or be retried).
    let opts = Opts::plain()
        .max_concurrent_streams(3)
        .settings_delay(Duration::from_millis(150));
    let up = H2Upstream::start(None, opts);
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let rs = concurrent_gets(d.addr, 15, "/hold?ms=50");
    let failed: Vec<String> = rs
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| format!("{} {}", r.status, r.body_str()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 15 failed: {failed:?}\nupstream: {} connections, {} requests seen",
        failed.len(),
        up.accepted(),
        up.seen_path("/hold").len()
    );
    assert_eq!(up.seen_path("/hold").len(), 15);
    assert!(up.max_open_streams_per_connection() <= 3);
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn after_an_upstream_goaway_requests_go_to_a_new_connection() {
    // The upstream sends GOAWAY as the second stream of each connection arrives; a client
    // must not open further streams there (RFC 9113 §6.8).
    let up = H2Upstream::start(None, Opts::plain().goaway_after(2));
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let mut c = Client::connect(d.addr);
    for i in 0..6 {
        let r = get_on(&mut c, &format!("/echo/{i}"));
        assert_eq!(
            r.status,
            200,
            "request {i}: {r:?}\nupstream: {:?}",
            up.seen()
        );
        assert_eq!(Echoed::parse(&r).target, format!("/echo/{i}"));
    }
    let conns: Vec<usize> = up.seen().iter().map(|s| s.conn).collect();
    assert_eq!(conns, [1, 1, 2, 2, 3, 3], "connection of each request");
    assert!(up.failures().is_empty(), "{:?}", up.failures());
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
fn an_idle_upstream_connection_closes_after_idle_conn_timeout() {
    let up = H2Upstream::plain();
    let t = h2_loc(&["idle_conn_timeout: 300ms"]);
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &t)])));
    assert_eq!(get(d.addr, "/bytes/10").status, 200);
    assert_eq!(up.closed(), 0);
    // Checked every second (README): closed within a few seconds, not held forever.
    assert!(
        eventually(Duration::from_secs(5), || up.closed() == 1),
        "the idle upstream connection was not closed"
    );
    let r = get(d.addr, "/bytes/10");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(up.accepted(), 2, "a new connection for the next request");
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

/// Polls `cond` every 10 ms for up to `wait`; whether it came true.
fn eventually(wait: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
