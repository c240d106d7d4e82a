//! Shared helpers for the `limits_*` integration tests (spec §6, §7, §4): config builders
//! (`loc`, `yaml`, `global_limit`, `echo_dito`), dito-echo's body pattern, a streaming raw
//! client (`Conn`) that reads heads and bodies incrementally and tells FIN from RST, and
//! assertions for the 413 envelope and for exact-length and chunked 200 bodies. The strict JSON
//! checker the envelope assertions use lives in `json`.
//!
//! A directory module so cargo does not build it as a test of its own; not every test file uses
//! every helper.

#![allow(dead_code)]

mod json;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{config, Dito, Echo};

pub use json::{parse_json, Json};

pub const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Config helpers
// ---------------------------------------------------------------------------------------------

/// One `locations[]` item; `extra` are further keys, each line indented by four spaces.
pub fn loc(path: &str, target: &str, extra: &str) -> String {
    format!("  - path: '{path}'\n    target_url: '{target}'\n{extra}")
}

pub const NO_BUFFERING: &str = "    disable_response_buffering: true\n";

pub fn yaml(top: &str, locs: &[String]) -> String {
    config(&format!("{top}locations:\n{}", locs.concat()))
}

pub fn global_limit(n: u64) -> String {
    format!("response_limits:\n  max_response_body_size: {n}\n")
}

/// Echo behind a Dito with global response limit `limit`: `/raw/P` → `P` with buffering off,
/// anything else → `P` with buffering on.
pub fn echo_dito(limit: u64) -> (Echo, Dito) {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(
        &global_limit(limit),
        &[
            loc("^/raw/", &format!("{u}/"), NO_BUFFERING),
            loc("^/", &format!("{u}/"), ""),
        ],
    ));
    (e, d)
}

/// Pattern byte `i` of dito-echo's sized bodies.
pub fn pattern_byte(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// A streaming raw client: reads heads and bodies incrementally, tells FIN from RST
// ---------------------------------------------------------------------------------------------

/// How a connection ended while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Fin,
    Reset,
    Timeout,
}

#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub raw: String,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// How a chunked body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedEnd {
    /// The terminating chunk and trailer section arrived.
    Complete { trailers: Vec<(String, String)> },
    /// The connection ended (or went silent) first.
    Broken(End),
}

pub struct Conn {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_nodelay(true).unwrap();
        Conn { s, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    pub fn fill(&mut self) -> Result<usize, End> {
        let mut tmp = [0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(0) => Err(End::Fin),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(End::Reset),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(End::Timeout)
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// The next response head, or how the connection ended before one.
    pub fn try_head(&mut self) -> Result<Head, (End, Vec<u8>)> {
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let head = Head {
                        status: r.code.unwrap(),
                        headers: r
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        raw: String::from_utf8_lossy(&self.buf[..n]).into_owned(),
                    };
                    self.buf.drain(..n);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => panic!(
                    "malformed response head ({e}): {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            if let Err(end) = self.fill() {
                return Err((end, std::mem::take(&mut self.buf)));
            }
        }
    }

    pub fn head(&mut self) -> Head {
        self.try_head()
            .unwrap_or_else(|(end, got)| panic!("no response head ({end:?}), got {got:?}"))
    }

    /// Reads exactly `n` body bytes, handing them to `sink` as they arrive.
    pub fn body_len(&mut self, n: u64, sink: &mut dyn FnMut(&[u8])) -> Result<(), End> {
        let mut left = n;
        while left > 0 {
            if self.buf.is_empty() {
                self.fill()?;
            }
            let k = (left as usize).min(self.buf.len());
            sink(&self.buf[..k]);
            self.buf.drain(..k);
            left -= k as u64;
        }
        Ok(())
    }

    /// Reads a close-delimited body; returns how it ended.
    pub fn body_close(&mut self, sink: &mut dyn FnMut(&[u8])) -> End {
        loop {
            if !self.buf.is_empty() {
                sink(&self.buf);
                self.buf.clear();
            }
            if let Err(e) = self.fill() {
                return e;
            }
        }
    }

    pub fn line(&mut self) -> Result<String, End> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(l);
            }
            self.fill()?;
        }
    }

    /// Reads a chunked body, handing data to `sink` as it arrives; panics on bad framing.
    pub fn body_chunked(&mut self, sink: &mut dyn FnMut(&[u8])) -> ChunkedEnd {
        loop {
            let line = match self.line() {
                Ok(l) => l,
                Err(e) => return ChunkedEnd::Broken(e),
            };
            let size = u64::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let l = match self.line() {
                        Ok(l) => l,
                        Err(e) => return ChunkedEnd::Broken(e),
                    };
                    if l.is_empty() {
                        return ChunkedEnd::Complete { trailers };
                    }
                    let (n, v) = l.split_once(':').expect("trailer field");
                    trailers.push((n.to_owned(), v.trim().to_owned()));
                }
            }
            if let Err(e) = self.body_len(size, sink) {
                return ChunkedEnd::Broken(e);
            }
            while self.buf.len() < 2 {
                if let Err(e) = self.fill() {
                    return ChunkedEnd::Broken(e);
                }
            }
            assert_eq!(&self.buf[..2], b"\r\n", "chunk not followed by CRLF");
            self.buf.drain(..2);
        }
    }

    /// Whole body of a response with a known framing (CL or chunked, complete); trailers too.
    pub fn full_body(&mut self, head: &Head) -> (Vec<u8>, Vec<(String, String)>) {
        let mut body = Vec::new();
        if let Some(cl) = head.header("content-length") {
            let n: u64 = cl.trim().parse().unwrap();
            self.body_len(n, &mut |b| body.extend_from_slice(b))
                .unwrap_or_else(|e| panic!("body truncated ({e:?}) after {}", body.len()));
            return (body, Vec::new());
        }
        assert!(head.is_chunked(), "no framing in {:?}", head.raw);
        match self.body_chunked(&mut |b| body.extend_from_slice(b)) {
            ChunkedEnd::Complete { trailers } => (body, trailers),
            ChunkedEnd::Broken(e) => panic!("chunked body broken ({e:?}) after {}", body.len()),
        }
    }

    /// Waits up to `wait` for the connection to end; bytes are an error.
    pub fn ending(&mut self, wait: Duration) -> End {
        assert!(
            self.buf.is_empty(),
            "unread bytes {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.s.set_read_timeout(Some(wait)).unwrap();
        let r = self.fill();
        self.s
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        match r {
            Ok(_) => panic!("unexpected bytes {:?}", String::from_utf8_lossy(&self.buf)),
            Err(e) => e,
        }
    }
}

pub fn get_req(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// GET on a new connection: head, whole body and trailers.
pub fn fetch(addr: SocketAddr, path: &str) -> (Head, Vec<u8>, Vec<(String, String)>) {
    let mut c = Conn::connect(addr);
    c.send(&get_req(path));
    let h = c.head();
    let (b, t) = c.full_body(&h);
    (h, b, t)
}

/// Checks a 413 response envelope (spec §7) and returns the decoded JSON.
pub fn assert_413(head: &Head, body: &[u8], message: &str) -> Json {
    assert_eq!(head.status, 413, "head {:?} body {:?}", head.raw, body);
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        head.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    let j = parse_json(body).unwrap_or_else(|e| {
        panic!(
            "413 body is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(j.at(&["error", "code"]).num(), "413");
    assert_eq!(j.at(&["error", "message"]).str(), message);
    let id = head.header("x-request-id").expect("X-Request-ID");
    assert_eq!(j.at(&["request_id"]).str(), id);
    let ts: u64 = j.at(&["timestamp"]).num().parse().unwrap();
    assert!(ts.abs_diff(now_secs()) < 60, "timestamp {ts}");
    assert_eq!(j.keys(), ["error", "request_id", "timestamp"]);
    j
}

/// A response 413: message, `limit_bytes` and `path` exactly.
pub fn assert_response_413(head: &Head, body: &[u8], limit: u64, path: &str) {
    let j = assert_413(head, body, "Response body size exceeds limit");
    assert_eq!(j.at(&["error"]).keys(), ["code", "message", "details"]);
    assert_eq!(j.at(&["error", "details"]).keys(), ["limit_bytes", "path"]);
    assert_eq!(
        j.at(&["error", "details", "limit_bytes"]).num(),
        limit.to_string()
    );
    assert_eq!(j.at(&["error", "details", "path"]).str(), path);
}

/// GET `path` on a new connection and expect the response 413.
pub fn expect_response_413(addr: SocketAddr, path: &str, limit: u64, json_path: &str) {
    let (h, b, _) = fetch(addr, path);
    assert_response_413(&h, &b, limit, json_path);
}

/// GET `path` and expect 200 with exactly `len` pattern bytes, framed by Content-Length.
pub fn expect_exact_length(addr: SocketAddr, path: &str, len: usize) {
    let (h, b, _) = fetch(addr, path);
    assert_eq!(h.status, 200, "{path}: {:?}", h.raw);
    assert_eq!(
        h.header("content-length"),
        Some(len.to_string().as_str()),
        "{path}: {:?}",
        h.raw
    );
    assert_eq!(h.count("transfer-encoding"), 0, "{path}: {:?}", h.raw);
    assert_eq!(b, pattern(len), "{path}");
}

/// GET `path` and expect 200 with exactly `len` pattern bytes, chunked, no Content-Length.
pub fn expect_chunked(addr: SocketAddr, path: &str, len: usize) {
    let (h, b, t) = fetch(addr, path);
    assert_eq!(h.status, 200, "{path}: {:?}", h.raw);
    assert!(h.is_chunked(), "{path}: {:?}", h.raw);
    assert_eq!(h.count("content-length"), 0, "{path}: {:?}", h.raw);
    assert_eq!(b.len(), len, "{path}");
    assert!(b == pattern(len), "{path}: body differs from the pattern");
    assert!(t.is_empty(), "{path}: trailers {t:?}");
}
