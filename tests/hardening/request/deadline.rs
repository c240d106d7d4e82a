//! Item 16: `request_timeout` is a hard deadline. A client still uploading when it fires gets
//! its 504 at once with `Connection: close`, then a short lingering close (about 1 s) — Dito
//! no longer reads the rest of a small body first under the 30 s body idle timeout. An upload
//! that completes inside the deadline is unaffected.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::scripted;
use crate::proxy_common::assert_upstream_error;
use crate::support::client::{Client, Ending};
use crate::support::h2client;

const TOP: &str = "request_timeout: 1s\n";
/// Slack for scheduling on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
const DEADLINE: Duration = Duration::from_secs(1);
/// The lingering close after the 504 (spec §6: "at most ~1 s").
const LINGER: Duration = Duration::from_secs(1);

/// Writes `piece` every `every` on its own thread until the socket fails, `stop` is set, or
/// `max` pieces went out; reports when a write failed (the server closed the socket).
struct Uploader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<Instant>>>,
}

impl Uploader {
    fn start(mut s: TcpStream, piece: &'static [u8], every: Duration, max: usize) -> Uploader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for _ in 0..max {
                if flag.load(Ordering::SeqCst) {
                    return None;
                }
                if s.write_all(piece).is_err() {
                    return Some(Instant::now());
                }
                std::thread::sleep(every);
            }
            None
        });
        Uploader {
            stop,
            thread: Some(thread),
        }
    }

    /// When a write failed (the server closed the socket), if one did within `limit`.
    fn cut_off_within(mut self, limit: Duration) -> Option<Instant> {
        let thread = self.thread.take()?;
        let until = Instant::now() + limit;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::SeqCst);
        thread.join().ok().flatten()
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Sends `head`, uploads `piece` every 400 ms, and checks the 504 arrives at the deadline
/// with `Connection: close`, and that the socket is closed after a short linger.
fn slow_upload_gets_its_504_at_the_deadline(head: &[u8], piece: &'static [u8]) {
    let (_up, d) = scripted(TOP);
    let mut c = Client::connect(d.addr);
    // Longer than the 504 may take, shorter than the old behaviour (drain the whole body).
    c.stream
        .set_read_timeout(Some(DEADLINE + MARGIN + Duration::from_secs(2)))
        .unwrap();
    let start = Instant::now();
    c.send(head);
    let uploader = Uploader::start(
        c.stream.try_clone().unwrap(),
        piece,
        Duration::from_millis(400),
        200,
    );
    let r = c.read_response();
    let answered = start.elapsed();
    assert_upstream_error(&r, 504, "Gateway Timeout", "request_timeout");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(
        answered >= DEADLINE - Duration::from_millis(100) && answered <= DEADLINE + MARGIN,
        "504 after {answered:?}"
    );
    // The write side closes right after the 504 ...
    assert_ne!(c.ending(MARGIN), Ending::Open, "still open after the 504");
    // ... and the unread upload is discarded for about a second, then the socket goes.
    let failed = uploader
        .cut_off_within(LINGER + MARGIN)
        .expect("the upload was never cut off");
    let cut = failed.duration_since(start);
    assert!(
        cut <= answered + LINGER + MARGIN,
        "upload cut off after {cut:?} (504 after {answered:?})"
    );
}

#[test]
fn a_slow_sized_upload_gets_its_504_at_the_deadline() {
    // 1000 bytes at one per 400 ms: small enough that the old code read it all (400 s) first.
    slow_upload_gets_its_504_at_the_deadline(
        b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n",
        b"x",
    );
}

#[test]
fn a_slow_chunked_upload_gets_its_504_at_the_deadline() {
    slow_upload_gets_its_504_at_the_deadline(
        b"POST /slow HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1\r\nx\r\n",
    );
}

#[test]
fn an_upload_that_completes_inside_the_deadline_is_unaffected() {
    let (up, d) = scripted(TOP);
    let mut c = Client::connect(d.addr);
    let start = Instant::now();
    c.send(b"POST /quick HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n");
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(60));
        c.send(b"y");
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r:?} after {:?}", start.elapsed());
    assert_eq!(r.header("connection"), None, "{r:?}");
    let seen = up.next_request(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.body, b"yyyyyyyy");
    // The connection stays usable.
    c.send(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn an_http2_slow_upload_gets_its_504_at_the_deadline() {
    let (_up, d) = scripted(TOP);
    let (answered, status) = h2client::run(async {
        let (client, _conn) = h2client::connect(d.addr).await;
        let mut c = client.ready().await.unwrap();
        let req = h2client::req("POST", "/slow")
            .header("content-length", "1000")
            .body(())
            .unwrap();
        let start = tokio::time::Instant::now();
        let (resp, mut send) = c.send_request(req, false).unwrap();
        let uploader = tokio::spawn(async move {
            for _ in 0..200 {
                if send.send_data(Bytes::from_static(b"x"), false).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        });
        let reply = h2client::read_reply(resp).await;
        let answered = start.elapsed();
        uploader.abort();
        (answered, reply.map(|r| r.status))
    });
    assert_eq!(status.ok(), Some(504));
    assert!(
        answered >= DEADLINE - Duration::from_millis(100) && answered <= DEADLINE + MARGIN,
        "504 after {answered:?}"
    );
}
