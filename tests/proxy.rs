//! Proxying as a client and an upstream see it (spec §3, §4, §5, §7): routing, the path and
//! query rewrite, the upstream request headers, bodies both ways, the response relay (1xx,
//! 204/304/HEAD, chunked, trailers, close-delimited, SSE, aborts), invalid upstream responses,
//! 502/504, the per-worker pool (reuse, no reuse, retry, connection limit).
//!
//! Upstreams are the demo `dito-echo` (its `/echo` body describes the request it received) or
//! purpose-built scripted ones (`support::upstream`). Everything is real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::client::{get, request, Client, Ending, Resp};
use support::upstream::{ok, Gate, Reply, Upstream};
use support::{config, Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One `locations[]` item; `extra` are further keys, each line indented by four spaces.
fn loc(path: &str, target: &str, extra: &str) -> String {
    format!("  - path: '{path}'\n    target_url: '{target}'\n{extra}")
}

const REPLACE: &str = "    replace_path: true\n";
const NO_BUFFERING: &str = "    disable_response_buffering: true\n";

/// A config with `top` (top-level keys) and the locations.
fn yaml(top: &str, locs: &[String]) -> String {
    config(&format!("{top}locations:\n{}", locs.concat()))
}

/// The same config with one worker, so every request shares one upstream pool.
fn one_worker(cfg: String) -> String {
    assert!(cfg.contains("workers: 2\n"), "{cfg}");
    cfg.replace("workers: 2\n", "workers: 1\n")
}

/// Echo plus a Dito whose locations pass paths through unchanged: `/raw/P` → `/P` with
/// response buffering off (the exact relay, spec §6's hold never applies), anything else → `P`.
fn through_echo(top: &str) -> (Echo, Dito) {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(
        top,
        &[
            loc("^/raw/", &format!("{u}/"), NO_BUFFERING),
            loc("^/", &u, ""),
        ],
    ));
    (e, d)
}

fn through_echo_one_worker(top: &str) -> (Echo, Dito) {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&one_worker(yaml(
        top,
        &[
            loc("^/raw/", &format!("{u}/"), NO_BUFFERING),
            loc("^/", &u, ""),
        ],
    )));
    (e, d)
}

/// Echo's body pattern: byte i is `b'a' + i % 26`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// FNV-1a 64, as echo's `body-fnv64:` line.
fn fnv64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Headers Dito sets on every upstream request (spec §3 steps 2, 3, 5).
const DITO_SET: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// What echo's `/echo` reported about the request it received.
#[derive(Debug)]
struct Echoed {
    method: String,
    target: String,
    version: String,
    /// `(name, value)` in order and case as received upstream.
    headers: Vec<(String, String)>,
    body_length: usize,
    body_fnv64: String,
    trailers: Vec<String>,
}

impl Echoed {
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

    fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }

    /// Every upstream header except Dito's own, as `Name: value`, in order.
    fn others(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| !DITO_SET.iter().any(|d| n.eq_ignore_ascii_case(d)))
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    }
}

/// Parses an `/echo` response; it must be a 200 from echo.
fn echoed(r: &Resp) -> Echoed {
    assert_eq!(r.status, 200, "not an echo answer: {r:?}");
    assert!(r.header("x-echo-conn").is_some(), "not from echo: {r:?}");
    let mut e = Echoed {
        method: String::new(),
        target: String::new(),
        version: String::new(),
        headers: Vec::new(),
        body_length: usize::MAX,
        body_fnv64: String::new(),
        trailers: Vec::new(),
    };
    for line in r.body_str().lines() {
        let (k, v) = line.split_once(": ").unwrap_or((line, ""));
        match k {
            "method" => e.method = v.to_owned(),
            "target" => e.target = v.to_owned(),
            "version" => e.version = v.to_owned(),
            "header" => {
                let (n, v) = v.split_once(": ").unwrap_or((v, ""));
                e.headers.push((n.to_owned(), v.to_owned()));
            }
            "body-length" => e.body_length = v.parse().unwrap(),
            "body-fnv64" => e.body_fnv64 = v.to_owned(),
            "trailer" => e.trailers.push(v.to_owned()),
            _ => panic!("unexpected echo line {line:?}"),
        }
    }
    e
}

/// Asserts Dito's error envelope (spec §7) with a `details.upstream_error`.
fn assert_upstream_error(r: &Resp, code: u16, message: &str, upstream_error: &str) {
    assert_eq!(r.status, code, "{r:?}");
    assert!(
        r.header("x-echo-conn").is_none(),
        "from echo, not Dito: {r:?}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let id = r.header("x-request-id").expect("x-request-id").to_owned();
    let body = r.body_str();
    let prefix = format!(
        r#"{{"error":{{"code":{code},"message":"{message}","details":{{"upstream_error":"{upstream_error}"}}}},"request_id":"{id}","timestamp":"#
    );
    assert!(
        body.starts_with(&prefix),
        "body {body:?}\nwant prefix {prefix:?}"
    );
    let rest = &body[prefix.len()..];
    assert!(
        rest.ends_with('}') && rest[..rest.len() - 1].bytes().all(|b| b.is_ascii_digit()),
        "body {body:?}"
    );
}

/// Dito's own 404 (no location), not one relayed from echo.
fn assert_dito_404(r: &Resp) {
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        r.header("x-echo-conn").is_none(),
        "relayed from echo: {r:?}"
    );
    assert!(
        r.body_str()
            .starts_with(r#"{"error":{"code":404,"message":"Not Found"},"request_id":""#),
        "{}",
        r.body_str()
    );
}

/// A raw connection for what the harness client cannot show: 1xx timing, trailers, resets.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Reads until `done(buf)`; panics on EOF, error or a 15 s silence.
    fn read_until(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut tmp = [0u8; 65536];
        while !done(&self.buf) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            match self.s.read(&mut tmp) {
                Ok(0) => panic!(
                    "closed before {what}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) => panic!(
                    "read failed before {what}: {e}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    fn read_until_contains(&mut self, needle: &[u8]) {
        let what = String::from_utf8_lossy(needle).into_owned();
        self.read_until(&what, |b| find(b, needle).is_some());
    }

    /// Reads until the server ends the connection (or `wait` of silence) and says how.
    fn read_to_end(&mut self, wait: Duration) -> Ending {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tmp = [0u8; 65536];
        loop {
            assert!(Instant::now() < deadline, "server kept sending");
            match self.s.read(&mut tmp) {
                Ok(0) => return Ending::Closed,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ending::Reset,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ending::Open
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Splits the buffer at the end of the first response head.
    fn head_and_rest(&self) -> (String, Vec<u8>) {
        let end = find(&self.buf, b"\r\n\r\n").expect("a complete head") + 4;
        (
            String::from_utf8_lossy(&self.buf[..end]).into_owned(),
            self.buf[end..].to_vec(),
        )
    }
}

/// The value of a header in a raw head (case-insensitive name), if present once or more.
fn head_field<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// A complete chunked body: `(data, trailer section without the final CRLF, bytes used)`;
/// `None` while incomplete. Panics on a malformed one.
fn parse_chunked(bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let mut pos = 0;
    let mut data = Vec::new();
    loop {
        let eol = pos + find(&bytes[pos..], b"\r\n")?;
        let line = std::str::from_utf8(&bytes[pos..eol]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk line {line:?}"));
        pos = eol + 2;
        if size == 0 {
            let start = pos;
            loop {
                let eol = pos + find(&bytes[pos..], b"\r\n")?;
                let blank = eol == pos;
                pos = eol + 2;
                if blank {
                    return Some((data, bytes[start..pos - 2].to_vec(), pos));
                }
            }
        }
        if bytes.len() < pos + size + 2 {
            return None;
        }
        data.extend_from_slice(&bytes[pos..pos + size]);
        assert_eq!(
            &bytes[pos + size..pos + size + 2],
            b"\r\n",
            "chunk without CRLF"
        );
        pos += size + 2;
    }
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn get_on(c: &mut Client, path: &str) -> Resp {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
    c.read_response()
}

// ---------------------------------------------------------------------------------------------
// Routing and the path rewrite
// ---------------------------------------------------------------------------------------------

#[test]
fn routing_takes_the_first_match_in_config_order_else_404() {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(
        "",
        &[
            loc("^/api/special", &format!("{u}/echo/special"), REPLACE),
            loc("^/api", &format!("{u}/echo/general"), REPLACE),
            loc("^/api/never", &format!("{u}/echo/never"), REPLACE),
            loc("v2", &format!("{u}/echo/anywhere"), REPLACE),
        ],
    ));
    for (path, target) in [
        ("/api/special/x", "/echo/special"),
        ("/api/never", "/echo/general"),
        ("/apix", "/echo/general"),
        ("/api/special?q", "/echo/special?q"),
        ("/x/v2/y", "/echo/anywhere"),
    ] {
        assert_eq!(echoed(&get(d.addr, path)).target, target, "{path}");
    }
    // The query is not part of what is matched.
    assert_dito_404(&get(d.addr, "/other?api"));
    assert_dito_404(&get(d.addr, "/x?v2"));
    assert_dito_404(&get(d.addr, "/"));
}

#[test]
fn no_locations_means_404_for_everything() {
    let d = Dito::start(&config(""));
    assert_dito_404(&get(d.addr, "/api/x"));
}

/// What the upstream request path should be.
enum Want {
    /// echo's `target:` line.
    Target(&'static str),
    /// An upstream path echo does not serve: its 404 text names the path it got.
    EchoNotFound(&'static str),
    /// No location matches.
    DitoNotFound,
}

#[test]
fn every_row_of_the_path_table() {
    // Spec §3's table with `/echo` prefixed to the target paths so echo answers; rows whose
    // target path is empty are checked through echo's 404 text ("no such endpoint: P").
    let rows: &[(&str, &str, bool, &str, Want)] = &[
        (
            "^/api",
            "/echo/base",
            false,
            "/api/users?x=1",
            Want::Target("/echo/base/users?x=1"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/api",
            Want::Target("/echo/base"),
        ),
        ("^/api", "", false, "/api", Want::EchoNotFound("/")),
        (
            "^/api",
            "/echo/base",
            false,
            "/api//x",
            Want::Target("/echo/base//x"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/apiary",
            Want::Target("/echo/base/ary"),
        ),
        (
            "^/api(/|$)",
            "/echo/base",
            false,
            "/apiary",
            Want::DitoNotFound,
        ),
        (
            "^/api(/|$)",
            "/echo/base",
            false,
            "/api/x",
            Want::Target("/echo/base/x"),
        ),
        (
            "/v1",
            "/echo/base",
            false,
            "/x/v1",
            Want::Target("/echo/base/x/v1"),
        ),
        (
            "^/rp",
            "/echo/base?tq=1",
            true,
            "/rp/extra?a=1",
            Want::Target("/echo/base?tq=1&a=1"),
        ),
        (
            "^/s",
            "/echo/b%2Fc",
            false,
            "/s/a%2Fb",
            Want::Target("/echo/b%2Fc/a%2Fb"),
        ),
        // Further cases of the same algorithm.
        (
            "^/api",
            "/echo/base/",
            false,
            "/api/x",
            Want::Target("/echo/base/x"),
        ),
        (
            "^/api",
            "/echo/base/",
            false,
            "/api",
            Want::Target("/echo/base/"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/api/",
            Want::Target("/echo/base/"),
        ),
        (
            "^/api",
            "/echo/base//",
            false,
            "/api//x",
            Want::Target("/echo/base///x"),
        ),
        ("^/api", "", false, "/api/x", Want::EchoNotFound("/x")),
        ("^/rp", "", true, "/rp/x?a=1", Want::EchoNotFound("/")),
        (
            "^/rp",
            "/echo/base",
            true,
            "/rp",
            Want::Target("/echo/base"),
        ),
        // An empty match at 0 leaves the whole path as the rest.
        (
            "^",
            "/echo/base",
            false,
            "/foo",
            Want::Target("/echo/base/foo"),
        ),
        (
            "a*",
            "/echo/base",
            false,
            "/xa",
            Want::Target("/echo/base/xa"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/api/%7Euser/a%20b",
            Want::Target("/echo/base/%7Euser/a%20b"),
        ),
    ];
    let e = Echo::start();
    for (pattern, tpath, replace, request, want) in rows {
        let target = format!("http://{}{tpath}", e.addr);
        let extra = if *replace { REPLACE } else { "" };
        let d = Dito::start(&yaml("", &[loc(pattern, &target, extra)]));
        let r = get(d.addr, request);
        let row = format!("{pattern} {target} replace={replace} {request}");
        match want {
            Want::Target(t) => assert_eq!(echoed(&r).target, *t, "{row}"),
            Want::EchoNotFound(p) => {
                assert_eq!(r.status, 404, "{row}: {r:?}");
                assert!(r.header("x-echo-conn").is_some(), "{row}: {r:?}");
                assert_eq!(r.body_str(), format!("no such endpoint: {p}\n"), "{row}");
            }
            Want::DitoNotFound => assert_dito_404(&r),
        }
    }
}

#[test]
fn query_merge_keeps_raw_bytes() {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(
        "",
        &[
            loc("^/t", &format!("{u}/echo/t?tq=1"), REPLACE),
            loc("^/n", &format!("{u}/echo/n"), REPLACE),
            loc("^/e", &format!("{u}/echo/e?"), REPLACE),
        ],
    ));
    for (request, target) in [
        ("/n?a=%20b;c=d", "/echo/n?a=%20b;c=d"),
        ("/t?a=%20b;c=d", "/echo/t?tq=1&a=%20b;c=d"),
        ("/n?a=&&b=", "/echo/n?a=&&b="),
        ("/t?&", "/echo/t?tq=1&&"),
        ("/t?a=&&b", "/echo/t?tq=1&a=&&b"),
        ("/n?", "/echo/n?"),
        ("/t?", "/echo/t?tq=1"),
        ("/n", "/echo/n"),
        ("/t", "/echo/t?tq=1"),
        ("/e", "/echo/e"),
        ("/e?", "/echo/e?"),
        ("/e?x=1", "/echo/e?x=1"),
        ("/n?%zz%2", "/echo/n?%zz%2"),
        ("/n?a=1?b=2", "/echo/n?a=1?b=2"),
        ("/t?q=%E2%82%AC+x", "/echo/t?tq=1&q=%E2%82%AC+x"),
    ] {
        assert_eq!(echoed(&get(d.addr, request)).target, target, "{request}");
    }
}

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
        ["TE: trailers", "X-Keep: 1"],
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
