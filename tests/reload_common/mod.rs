//! Shared helpers of the reload and shutdown tests (`reload_triggers`, `reload_generations`,
//! `shutdown`): config builders, bounded polling, a non-panicking keep-alive client, and the
//! slow upstream the shutdown tests drain against. A directory module, so Cargo does not build
//! it as a test target of its own.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::client::{Client, Ending};
use crate::support::upstream::{ok, Upstream};
use crate::support::{config, Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Config, polling and the non-panicking client
// ---------------------------------------------------------------------------------------------

/// Pause between two polls of an observable change.
pub const POLL: Duration = Duration::from_millis(20);
/// How long a reload may take to become visible, unless a test states a tighter bound.
pub const RELOAD_LIMIT: Duration = Duration::from_secs(3);

/// One `locations[]` item.
pub fn loc(pattern: &str, target: &str) -> String {
    format!("  - path: '{pattern}'\n    target_url: '{target}'\n")
}

/// A config (ephemeral port, the driver under test) with `top` keys and the locations.
pub fn yaml(top: &str, locs: &[String]) -> String {
    config(&format!("{top}locations:\n{}", locs.concat()))
}

/// Polls `ok` every [`POLL`] until it holds, at most `limit`; how long it took.
pub fn poll(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if ok() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Replaces `path` by atomic rename of a temporary file written in the same directory.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(".config.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A response as the non-panicking client reads it.
#[derive(Debug)]
pub struct Small {
    pub status: u16,
    pub body: String,
    /// The response said `Connection: close`.
    pub close: bool,
}

impl Small {
    /// The `target:` line of a `dito-echo` `/echo` body: the path the upstream received.
    pub fn target(&self) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix("target: "))
    }
}

/// A keep-alive HTTP/1.1 client that reports every failure instead of panicking, so the
/// load test can count them.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn get(&mut self, path: &str) -> Result<Small, String> {
        self.stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: reload.test\r\n\r\n").as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        self.read_response()
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(0) => Err(format!(
                "connection closed by the server (have {:?})",
                String::from_utf8_lossy(&self.buf)
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn read_response(&mut self) -> Result<Small, String> {
        let (status, len, chunked, close, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let value = |name: &str| {
                        r.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                    };
                    let len = value("content-length").and_then(|v| v.parse::<usize>().ok());
                    let chunked = value("transfer-encoding").is_some_and(|v| v == "chunked");
                    let close = value("connection").is_some_and(|v| v == "close");
                    break (r.code.unwrap_or(0), len, chunked, close, n);
                }
                Ok(httparse::Status::Partial) => self.fill()?,
                Err(e) => {
                    return Err(format!(
                        "invalid response ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        };
        self.buf.drain(..head_len);
        let body = if chunked {
            self.read_chunked()?
        } else if let Some(n) = len {
            while self.buf.len() < n {
                self.fill()?;
            }
            self.buf.drain(..n).collect()
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            return Err(format!("response {status} without a length"));
        };
        Ok(Small {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            close,
        })
    }

    fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            while self.buf.len() < size + 2 {
                self.fill()?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }
}

/// `GET path` on a new connection; `None` when the connection or the exchange failed.
pub fn try_get(addr: SocketAddr, path: &str) -> Option<Small> {
    Conn::connect(addr).ok()?.get(path).ok()
}

pub fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    try_get(addr, path).map(|r| r.status)
}

/// The upstream path `dito-echo` saw for `GET path` through Dito, when it answered 200.
pub fn target(addr: SocketAddr, path: &str) -> Option<String> {
    try_get(addr, path)
        .filter(|r| r.status == 200)
        .and_then(|r| r.target().map(str::to_owned))
}

/// Whether a new connection to `addr` is refused.
pub fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// Echo plus a Dito with `top` keys and, per `(pattern, echo path)`, a location to echo.
pub fn echo_and_dito(top: &str, routes: &[(&str, &str)]) -> (Echo, Dito) {
    let e = Echo::start();
    let d = Dito::start(&echo_yaml(&e, top, routes));
    (e, d)
}

pub fn echo_yaml(e: &Echo, top: &str, routes: &[(&str, &str)]) -> String {
    let locs: Vec<String> = routes
        .iter()
        .map(|(p, t)| loc(p, &format!("http://{}{t}", e.addr)))
        .collect();
    yaml(top, &locs)
}

pub fn cfg_path(d: &Dito) -> std::path::PathBuf {
    d.dir.join("config.yaml")
}

// ---------------------------------------------------------------------------------------------
// Shutdown fixtures (spec §12)
// ---------------------------------------------------------------------------------------------

/// A scripted upstream that answers `/slow` after `SLOW`, anything else at once.
pub const SLOW: Duration = Duration::from_secs(2);

pub fn slow_upstream() -> Upstream {
    Upstream::start(|req| {
        if req.target().starts_with("/slow") {
            thread::sleep(SLOW);
            ok("slow\n")
        } else {
            ok("fast\n")
        }
    })
}

/// Starts `GET /slow` through `d` on its own thread; returns once the upstream has it. The
/// thread sends the response (or the failure) and the connection's ending.
pub fn start_slow_request(
    d: &Dito,
    up: &Upstream,
) -> mpsc::Receiver<Result<(support::client::Resp, Ending, Instant), String>> {
    let (tx, rx) = mpsc::channel();
    let addr = d.addr;
    thread::spawn(move || {
        let result = std::panic::catch_unwind(move || {
            let mut c = Client::connect(addr);
            c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = c.read_response();
            let at = Instant::now();
            (r, c.ending(Duration::from_secs(2)), at)
        });
        let _ = tx.send(result.map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        }));
    });
    let req = up.next_request(Duration::from_secs(5));
    assert!(
        req.as_ref().is_some_and(|r| r.target() == "/slow"),
        "the slow request did not reach the upstream: {req:?}"
    );
    rx
}

pub fn dito_to(up: &Upstream, top: &str) -> Dito {
    let u = format!("http://{}", up.addr);
    Dito::start(&yaml(
        top,
        &[
            loc("^/slow$", &format!("{u}/slow")),
            loc("^/fast$", &format!("{u}/fast")),
        ],
    ))
}
