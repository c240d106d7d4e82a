//! Hardening tests: a request body whose upload to an HTTP/2 upstream (`force_http2`) ends
//! early (issue 17, found beside it). The exchange must end at once, not wait out
//! `response_header_timeout` (60 s by default) for a head that cannot come: an upstream that
//! resets the stream mid-upload gets the client a prompt 502 `reset`, and an upstream that
//! answered early (RFC 9113 §8.1: a complete 413, then RST_STREAM NO_ERROR) has its answer
//! relayed promptly. The failures Dito itself causes (h2 refusing the end of a request) cannot
//! be reached from a client any more, since trailer sections are filtered; they are tested
//! beside the code (`src/upstream/http2/exchange_tests.rs`). The HTTP/1.1 counterpart (a
//! write that fails mid-upload) is here too: it was already prompt, and must stay so.
//!
//! The upstream here speaks HTTP/2 frame by frame (prior knowledge on plain TCP), so a test
//! decides exactly when it answers or resets and what it has read by then.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proxy_common::{assert_upstream_error, loc, one_worker, yaml};
use crate::support::client::{Client, Resp};
use crate::support::Dito;

/// What the client's answer must arrive within; `response_header_timeout` is 60 s.
const PROMPT: Duration = Duration::from_secs(2);
/// How long the client waits at most, so a hang fails the test in seconds.
const CLIENT_WAIT: Duration = Duration::from_secs(5);
/// How long an upstream connection waits for Dito's next frame.
const PATIENCE: Duration = Duration::from_secs(20);

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const CANCEL: u32 = 0x8;
const NO_ERROR: u32 = 0x0;

/// The upstream's receive window for a stream, HTTP/2's default (it never sends
/// WINDOW_UPDATE): a script acting once this much body arrived finds Dito's upload waiting for
/// window, so the upload and the response wake together and either may be seen first.
const WINDOW: usize = 65_535;

/// What the upstream does with each request stream.
#[derive(Clone, Copy)]
enum Script {
    /// Reads this many body bytes, then resets the stream (CANCEL) without answering.
    ResetAfter(usize),
    /// Reads this many body bytes, then answers `status` with an empty body (END_STREAM) and
    /// sends RST_STREAM NO_ERROR: the rest of the request is not wanted.
    AnswerEarly { after: usize, status: u16 },
}

/// One frame, as read off the wire.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// An HTTP/2 upstream that follows one [`Script`] on every stream of every connection and
/// counts the DATA frames it received.
struct FrameUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    data_frames: Arc<AtomicUsize>,
}

impl FrameUpstream {
    fn start(script: Script) -> FrameUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let data_frames = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), data_frames.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let count = count.clone();
                std::thread::spawn(move || serve(conn, script, &count));
            }
        });
        FrameUpstream {
            addr,
            stop,
            data_frames,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn data_frames(&self) -> usize {
        self.data_frames.load(Ordering::SeqCst)
    }
}

impl Drop for FrameUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).ok()?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).ok()?;
    Some(Frame {
        kind: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        payload,
    })
}

fn write_frame(s: &mut TcpStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    let _ = s.write_all(&f);
}

/// A response head of `status` alone: `:status` as a literal with the static table's name
/// (index 8), not indexed (RFC 7541 §6.2.2).
fn status_block(status: u16) -> Vec<u8> {
    let mut block = vec![0x08, 0x03];
    block.extend_from_slice(status.to_string().as_bytes());
    block
}

/// One connection: the preface and SETTINGS, then the script on each request stream.
fn serve(mut s: TcpStream, script: Script, data_frames: &AtomicUsize) {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut preface = [0u8; 24];
    if s.read_exact(&mut preface).is_err() || &preface[..3] != b"PRI" {
        return;
    }
    write_frame(&mut s, SETTINGS, 0, 0, &[]);
    // Per open stream: body bytes still to read before the script acts.
    let mut waiting: Vec<(u32, usize)> = Vec::new();
    while let Some(f) = read_frame(&mut s) {
        match f.kind {
            SETTINGS if f.flags & ACK == 0 => write_frame(&mut s, SETTINGS, ACK, 0, &[]),
            HEADERS => {
                let after = match script {
                    Script::ResetAfter(n) | Script::AnswerEarly { after: n, .. } => n,
                };
                waiting.push((f.stream, after));
            }
            DATA => {
                data_frames.fetch_add(1, Ordering::SeqCst);
                let Some(i) = waiting.iter().position(|(id, _)| *id == f.stream) else {
                    continue;
                };
                let left = &mut waiting[i].1;
                *left = left.saturating_sub(f.payload.len());
                if *left > 0 {
                    continue;
                }
                waiting.remove(i);
                match script {
                    Script::ResetAfter(_) => {
                        write_frame(&mut s, RST_STREAM, 0, f.stream, &CANCEL.to_be_bytes());
                    }
                    Script::AnswerEarly { status, .. } => {
                        let block = status_block(status);
                        write_frame(&mut s, HEADERS, END_HEADERS | END_STREAM, f.stream, &block);
                        write_frame(&mut s, RST_STREAM, 0, f.stream, &NO_ERROR.to_be_bytes());
                    }
                }
            }
            _ => {}
        }
    }
}

/// One worker in front of `up` with `force_http2`, `request_timeout` far off and
/// `response_header_timeout` left at its default (60 s).
fn dito_before(up: &FrameUpstream) -> Dito {
    let h2 = "    transport:\n      http:\n        force_http2: true\n";
    Dito::start(&one_worker(yaml(
        "request_timeout: 300s\n",
        &[loc("^/", &up.url(), h2)],
    )))
}

/// Sends a POST announcing `length` body bytes and the first `sent` of them, and reads the
/// answer (failing the test after [`CLIENT_WAIT`]); the answer and how long it took.
fn post_part(d: &Dito, length: usize, sent: usize) -> (Resp, Duration) {
    let mut c = Client::connect(d.addr);
    c.stream.set_read_timeout(Some(CLIENT_WAIT)).unwrap();
    let start = Instant::now();
    c.send(
        format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n\r\n").as_bytes(),
    );
    // What Dito has not read when it answers may be refused by its closed socket, or left
    // unread.
    c.stream.set_write_timeout(Some(CLIENT_WAIT)).unwrap();
    match c.stream.write_all(&vec![b'x'; sent]) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::BrokenPipe
                    | ErrorKind::WouldBlock
                    | ErrorKind::TimedOut
            ) => {}
        Err(e) => panic!("send: {e}"),
    }
    let r = c.read_response();
    (r, start.elapsed())
}

#[test]
fn an_upstream_resetting_the_stream_mid_upload_is_a_prompt_502() {
    // Early in the body (the upload still sending) and at the end of the upstream's window
    // (the upload waiting for window), a few times each.
    for (after, round) in [16 * 1024, WINDOW]
        .into_iter()
        .flat_map(|a| (0..3).map(move |r| (a, r)))
    {
        let up = FrameUpstream::start(Script::ResetAfter(after));
        let d = dito_before(&up);
        let (r, took) = post_part(&d, 200_000, 200_000);
        assert_upstream_error(&r, 502, "Bad Gateway", "reset");
        assert!(
            took < PROMPT,
            "reset after {after}, round {round}: took {took:?}"
        );
        assert!(up.data_frames() > 0, "no body byte reached the upstream");
    }
}

#[test]
fn an_early_answer_then_a_reset_of_the_rest_is_relayed_promptly() {
    for (after, round) in [16 * 1024, WINDOW]
        .into_iter()
        .flat_map(|a| (0..3).map(move |r| (a, r)))
    {
        let up = FrameUpstream::start(Script::AnswerEarly { after, status: 413 });
        let d = dito_before(&up);
        let (r, took) = post_part(&d, 200_000, 200_000);
        assert_eq!(r.status, 413, "answer after {after}, round {round}: {r:?}");
        // The upstream's empty 413, not Dito's JSON one.
        assert!(
            r.header("content-type").is_none() && r.body.is_empty(),
            "{r:?}"
        );
        assert!(
            took < PROMPT,
            "answer after {after}, round {round}: took {took:?}"
        );
    }
}

/// The HTTP/1.1 counterpart: a write that fails mid-upload means the connection is gone, so
/// the response read beside the upload ends at once too, and the client is answered without
/// waiting for `response_header_timeout`.
#[test]
fn an_http11_upstream_resetting_mid_upload_is_a_prompt_502() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        // The head and some of the body, then a reset (SO_LINGER 0) instead of an answer.
        let mut got = 0;
        let mut buf = [0u8; 16 * 1024];
        while got < 20_000 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        got
    });
    let d = Dito::start(&one_worker(yaml(
        "request_timeout: 300s\n",
        &[loc("^/", &format!("http://{addr}"), "")],
    )));
    let (r, took) = post_part(&d, 2_000_000, 2_000_000);
    assert_upstream_error(&r, 502, "Bad Gateway", "reset");
    assert!(took < PROMPT, "the answer took {took:?}");
    assert!(upstream.join().unwrap() >= 20_000);
}
