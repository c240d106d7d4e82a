//! Request body limits as a client and an upstream see them (spec §6, with the §7 envelope):
//! a declared upload over the limit is 413 and never reaches the upstream, and a chunked upload
//! crossing the limit is 413 with the upstream request cut short. Also bounded memory (VmRSS)
//! while relaying 64 MiB responses, Content-Length and chunked, buffering on and off.
//!
//! Upstreams are the demo `dito-echo` or purpose-built std `TcpListener` threads. Everything is
//! real sockets on 127.0.0.1 with ephemeral ports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod limits_common;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use limits_common::{assert_413, echo_dito, find, get_req, loc, yaml, ChunkedEnd, Conn, End, MIB};
use support::upstream::Upstream;
use support::Dito;

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

const ELEVEN_MIB: u64 = 11 * MIB;

#[test]
fn declared_upload_over_the_limit_is_413_and_never_reaches_the_upstream() {
    let up = Upstream::start(|_| support::upstream::ok("fine"));
    let d = Dito::start(&yaml("", &[loc("^/", &format!("http://{}/", up.addr), "")]));
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut c = Conn::connect(d.addr);
        c.send(
            format!(
                "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {ELEVEN_MIB}\r\n{expect}X-Request-ID: up-1\r\n\r\n"
            )
            .as_bytes(),
        );
        let h = c.head();
        let (b, _) = c.full_body(&h);
        assert_eq!(h.header("connection"), Some("close"), "{:?}", h.raw);
        let j = assert_413(&h, &b, "Request body too large");
        assert_eq!(j.at(&["error"]).keys(), ["code", "message"]);
        assert_eq!(j.at(&["request_id"]).str(), "up-1");
        assert_eq!(
            String::from_utf8_lossy(&b),
            format!(
                r#"{{"error":{{"code":413,"message":"Request body too large"}},"request_id":"up-1","timestamp":{}}}"#,
                j.at(&["timestamp"]).num()
            )
        );
        assert_eq!(c.ending(Duration::from_secs(5)), End::Fin, "{expect:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(up.accepted(), 0, "the upstream saw a connection");
    // The limit itself passes (declared exactly 10 MiB): this upstream is reachable.
    let limit = 10 * MIB;
    let mut c = Conn::connect(d.addr);
    c.send(
        format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {limit}\r\n\r\n").as_bytes(),
    );
    let body = vec![b'z'; limit as usize];
    c.send(&body);
    let h = c.head();
    assert_eq!(h.status, 200, "{:?}", h.raw);
    assert_eq!(c.full_body(&h).0, b"fine");
    assert_eq!(up.accepted(), 1);
    let req = up.next_request(Duration::from_secs(5)).unwrap();
    assert_eq!(req.body.len() as u64, limit);
}

/// What a raw upstream got on its first connection before it ended.
struct Received {
    bytes: Vec<u8>,
    end: End,
}

/// An upstream that never answers: it reads its first connection until it ends.
fn silent_upstream() -> (SocketAddr, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut bytes = Vec::new();
        let mut tmp = vec![0u8; 65536];
        let end = loop {
            match s.read(&mut tmp) {
                Ok(0) => break End::Fin,
                Ok(n) => bytes.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
                Err(_) => break End::Timeout,
            }
        };
        let _ = tx.send(Received { bytes, end });
    });
    (addr, rx)
}

#[test]
fn chunked_upload_crossing_the_limit_is_413_and_the_upstream_request_is_cut_short() {
    let (addr, rx) = silent_upstream();
    let d = Dito::start(&yaml("", &[loc("^/", &format!("http://{addr}/"), "")]));
    let mut c = Conn::connect(d.addr);
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX-Request-ID: up-2\r\n\r\n");
    // The body goes out from another thread; Dito may stop reading it.
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let piece = 64 * 1024;
        let mut frame = format!("{piece:x}\r\n").into_bytes();
        frame.extend(vec![b'u'; piece]);
        frame.extend_from_slice(b"\r\n");
        let mut sent = 0u64;
        while sent < ELEVEN_MIB {
            if w.write_all(&frame).is_err() {
                return sent;
            }
            sent += piece as u64;
        }
        let _ = w.write_all(b"0\r\n\r\n");
        sent
    });
    let h = c.head();
    let (b, _) = c.full_body(&h);
    assert_eq!(h.header("connection"), Some("close"), "{:?}", h.raw);
    let j = assert_413(&h, &b, "Request body too large");
    assert_eq!(j.at(&["request_id"]).str(), "up-2");
    assert_eq!(j.at(&["error"]).keys(), ["code", "message"]);
    let got = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let head_end = find(&got.bytes, b"\r\n\r\n").expect("the upstream got a request head") + 4;
    let head = String::from_utf8_lossy(&got.bytes[..head_end]).into_owned();
    assert!(head.starts_with("POST /upload HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n"),
        "{head}"
    );
    let body = &got.bytes[head_end..];
    assert!(
        find(body, b"0\r\n\r\n").is_none(),
        "the upstream received a complete chunked request ({} body bytes)",
        body.len()
    );
    assert_ne!(
        got.end,
        End::Timeout,
        "the upstream connection was left open"
    );
    // At most the limit of payload went up (plus chunk framing).
    assert!(
        body.len() as u64 <= 10 * MIB + 64 * 1024,
        "{} body bytes upstream",
        body.len()
    );
    drop(c);
    let _ = writer.join();
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

fn vm_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS")
}

/// GET `path` on `c`, reading and discarding a complete 200 body of `len` bytes.
fn drain(c: &mut Conn, path: &str, len: u64) {
    c.send(&get_req(path));
    let h = c.head();
    assert_eq!(h.status, 200, "{path}: {:?}", h.raw);
    let mut seen = 0u64;
    let mut sink = |b: &[u8]| seen += b.len() as u64;
    if let Some(cl) = h.header("content-length") {
        assert_eq!(cl.parse::<u64>().unwrap(), len, "{path}");
        c.body_len(len, &mut sink)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    } else {
        assert!(h.is_chunked(), "{path}: {:?}", h.raw);
        let end = c.body_chunked(&mut sink);
        assert!(
            matches!(end, ChunkedEnd::Complete { .. }),
            "{path}: {end:?}"
        );
    }
    assert_eq!(seen, len, "{path}");
}

fn memory_stays_bounded(prefix: &str, kind: &str) {
    let (_e, d) = echo_dito(100 * MIB);
    let mut c = Conn::connect(d.addr);
    let warm = 4 * MIB;
    drain(&mut c, &format!("{prefix}/{kind}/{warm}"), warm);
    drain(&mut c, &format!("{prefix}/{kind}/{warm}"), warm);
    let before = vm_rss_kib(d.pid());
    let big = 64 * MIB;
    drain(&mut c, &format!("{prefix}/{kind}/{big}"), big);
    let after = vm_rss_kib(d.pid());
    let grew = after.saturating_sub(before);
    eprintln!("{prefix}/{kind}: VmRSS {before} KiB → {after} KiB after 64 MiB");
    assert!(
        grew <= 16 * 1024,
        "{prefix}/{kind}: RSS grew by {grew} KiB ({before} → {after} KiB)"
    );
}

#[test]
fn memory_64_mib_content_length_buffering_on() {
    memory_stays_bounded("", "bytes");
}

#[test]
fn memory_64_mib_chunked_buffering_on() {
    memory_stays_bounded("", "chunked");
}

#[test]
fn memory_64_mib_content_length_buffering_off() {
    memory_stays_bounded("/raw", "bytes");
}

#[test]
fn memory_64_mib_chunked_buffering_off() {
    memory_stays_bounded("/raw", "chunked");
}
