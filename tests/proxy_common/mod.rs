//! Helpers shared by the proxy test files (`proxy_routing`, `proxy_requests`,
//! `proxy_responses`, `proxy_failures`): config builders (`loc`, `yaml`, `through_echo`), the
//! parser for what `dito-echo`'s `/echo` reports (`Echoed`), Dito's error-envelope checks, a raw
//! client connection (`Raw`) with chunked and head parsing, and small byte utilities.
//!
//! A directory module so cargo does not build it as a test of its own; not every file uses
//! every helper, hence `dead_code` is allowed.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::support::client::{Client, Ending, Resp};
use crate::support::{config, Dito, Echo};

/// One `locations[]` item; `extra` are further keys, each line indented by four spaces.
pub fn loc(path: &str, target: &str, extra: &str) -> String {
    format!("  - path: '{path}'\n    target_url: '{target}'\n{extra}")
}

pub const REPLACE: &str = "    replace_path: true\n";
pub const NO_BUFFERING: &str = "    disable_response_buffering: true\n";

/// A config with `top` (top-level keys) and the locations.
pub fn yaml(top: &str, locs: &[String]) -> String {
    config(&format!("{top}locations:\n{}", locs.concat()))
}

/// The same config with one worker, so every request shares one upstream pool.
pub fn one_worker(cfg: String) -> String {
    assert!(cfg.contains("workers: 2\n"), "{cfg}");
    cfg.replace("workers: 2\n", "workers: 1\n")
}

/// Echo plus a Dito whose locations pass paths through unchanged: `/raw/P` → `/P` with
/// response buffering off (the exact relay, spec §6's hold never applies), anything else → `P`.
pub fn through_echo(top: &str) -> (Echo, Dito) {
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

pub fn through_echo_one_worker(top: &str) -> (Echo, Dito) {
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
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// FNV-1a 64, as echo's `body-fnv64:` line.
pub fn fnv64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Headers Dito sets on every upstream request (spec §3 steps 2, 3, 5).
pub const DITO_SET: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// What echo's `/echo` reported about the request it received.
#[derive(Debug)]
pub struct Echoed {
    pub method: String,
    pub target: String,
    pub version: String,
    /// `(name, value)` in order and case as received upstream.
    pub headers: Vec<(String, String)>,
    pub body_length: usize,
    pub body_fnv64: String,
    pub trailers: Vec<String>,
}

impl Echoed {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a header that must occur exactly once.
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name} upstream: {:?}", self.headers);
        all[0]
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }

    /// Every upstream header except Dito's own, as `Name: value`, in order.
    pub fn others(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| !DITO_SET.iter().any(|d| n.eq_ignore_ascii_case(d)))
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    }
}

/// Parses an `/echo` response; it must be a 200 from echo.
pub fn echoed(r: &Resp) -> Echoed {
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
pub fn assert_upstream_error(r: &Resp, code: u16, message: &str, upstream_error: &str) {
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
pub fn assert_dito_404(r: &Resp) {
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
pub struct Raw {
    pub s: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Reads until `done(buf)`; panics on EOF, error or a 15 s silence.
    pub fn read_until(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
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

    pub fn read_until_contains(&mut self, needle: &[u8]) {
        let what = String::from_utf8_lossy(needle).into_owned();
        self.read_until(&what, |b| find(b, needle).is_some());
    }

    /// Reads until the server ends the connection (or `wait` of silence) and says how.
    pub fn read_to_end(&mut self, wait: Duration) -> Ending {
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
    pub fn head_and_rest(&self) -> (String, Vec<u8>) {
        let end = find(&self.buf, b"\r\n\r\n").expect("a complete head") + 4;
        (
            String::from_utf8_lossy(&self.buf[..end]).into_owned(),
            self.buf[end..].to_vec(),
        )
    }
}

/// The value of a header in a raw head (case-insensitive name), if present once or more.
pub fn head_field<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// A complete chunked body: `(data, trailer section without the final CRLF, bytes used)`;
/// `None` while incomplete. Panics on a malformed one.
pub fn parse_chunked(bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>, usize)> {
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
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn get_on(c: &mut Client, path: &str) -> Resp {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
    c.read_response()
}
