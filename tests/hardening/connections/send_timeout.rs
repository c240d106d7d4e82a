//! Spec §6 `request_limits.send_timeout`: a write to the client that makes no progress for
//! this long (a client that stopped reading) aborts the response — the client connection is
//! reset and the upstream connection behind it closed — over HTTP/1.1 (plain and TLS),
//! HTTP/2 and WebSocket tunnels; a client that reads slowly but keeps reading is never cut. Issue 17: a client
//! that requested 100 MB and read nothing was still connected at 100 s.
//!
//! The upstream sends far more than the socket buffers between it and the client hold, and
//! the test client shrinks its receive buffer, so Dito's writes stall within milliseconds.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::flood::{pattern_at, Flood, FloodEnd};
use super::raw_h2::{RawH2, SETTINGS_INITIAL_WINDOW_SIZE};
use crate::proxy_common::{loc, one_worker, yaml};
use crate::support::tls::{provider, Pki};
use crate::support::Dito;

const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Far beyond every socket buffer on the way (autotuned receive buffers reach 32 MiB here),
/// within the default `max_response_body_size` (100 MiB).
const HUGE: u64 = 96 << 20;
/// When the abort may come at the latest: the timeout, plus the time the buffers take to
/// fill and the close to travel, with room for a loaded machine.
const LATEST: Duration = Duration::from_millis(3500);

fn limits() -> String {
    format!(
        "request_limits:\n  send_timeout: {}ms\n",
        SEND_TIMEOUT.as_millis()
    )
}

fn dito(top: &str, up: &Flood) -> Dito {
    Dito::start(&one_worker(yaml(
        &format!("{}{top}", limits()),
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )))
}

/// Sets SO_RCVBUF, so a client that does not read stops the sender early.
fn shrink_receive_buffer(s: &TcpStream, bytes: i32) {
    // SAFETY: setsockopt(2) on a socket this test owns, with a valid `int` that outlives the
    // call and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(bytes).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    shrink_receive_buffer(&s, 16 * 1024);
    s
}

const GET_BIG: &[u8] = b"GET /big HTTP/1.1\r\nHost: test.local\r\n\r\n";

/// The upstream's answer was cut (Dito closed its connection) between the timeout and
/// [`LATEST`] after the request.
fn assert_cut_on_time(end: Option<FloodEnd>, sent: Instant) {
    let end = end.expect("the upstream connection stayed open: the stalled client was never cut");
    assert!(!end.complete, "the whole body went out: {end:?}");
    let after = end.at.duration_since(sent);
    assert!(
        after >= SEND_TIMEOUT - Duration::from_millis(100) && after <= LATEST,
        "cut {after:?} after the request (send_timeout {SEND_TIMEOUT:?})"
    );
}

/// Reads what is buffered until the connection ends; it must end (reset or close), not hang.
fn assert_client_connection_ended(s: &mut impl Read) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "the client connection stayed open"
        );
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the client connection did not end: {e}"),
        }
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_with_its_upstream() {
    let up = Flood::start(HUGE);
    let d = dito("", &up);
    let mut s = connect(d.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(GET_BIG).unwrap();
    let sent = Instant::now();
    assert_cut_on_time(up.next_end(Duration::from_secs(15)), sent);
    assert_client_connection_ended(&mut s);
}

#[test]
fn a_tls_client_that_stops_reading_is_cut_with_its_upstream() {
    let pki = Pki::new();
    let up = Flood::start(HUGE);
    let tls = format!(
        "tls:\n  cert_file: '{}'\n  key_file: '{}'\n",
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let d = dito(&tls, &up);
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = connect(d.addr);
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let session = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut s = StreamOwned::new(session, tcp);
    s.write_all(GET_BIG).unwrap();
    s.flush().unwrap();
    let sent = Instant::now();
    assert_cut_on_time(up.next_end(Duration::from_secs(15)), sent);
    // The reset may arrive before rustls sees a complete record: any error ends it too.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "the client connection stayed open"
        );
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert!(
                    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "the client connection stayed open"
                );
                break;
            }
        }
    }
}

/// A WebSocket tunnel whose client stops reading is closed after `send_timeout`, long before
/// `websocket_idle_timeout` (which closes only a tunnel where nothing moves either way).
#[test]
fn a_tunnel_whose_client_stops_reading_is_closed() {
    let up = Flood::start(HUGE);
    let d = Dito::start(&one_worker(yaml(
        &limits(),
        &[loc(
            "^/",
            &format!("ws://{}", up.addr),
            "    enable_websocket: true\n    websocket_idle_timeout: 60s\n",
        )],
    )));
    let mut s = connect(d.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let sent = Instant::now();
    assert_cut_on_time(up.next_end(Duration::from_secs(15)), sent);
    assert_client_connection_ended(&mut s);
}

/// A client that reads in bursts with pauses of half the timeout gets its whole body: each
/// pause stalls Dito's write, but never for `send_timeout`.
#[test]
fn a_client_that_reads_slowly_is_not_cut() {
    const LEN: u64 = 16 << 20;
    const BURST: u64 = 4 << 20;
    let up = Flood::start(LEN);
    let d = dito("", &up);
    let mut s = connect(d.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(GET_BIG).unwrap();
    let mut got: Vec<u8> = Vec::new();
    let mut head_len = None;
    let mut pauses = 0;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        let burst_end = got.len() as u64 + BURST;
        while (got.len() as u64) < burst_end {
            let n = s.read(&mut buf).expect("the slow client was cut");
            assert!(n > 0, "the slow client was cut after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            if head_len.is_none() {
                head_len = got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
            }
            if head_len.is_some_and(|h| (got.len() - h) as u64 == LEN) {
                break;
            }
        }
        let h = head_len.expect("a response head");
        if (got.len() - h) as u64 == LEN {
            break;
        }
        pauses += 1;
        std::thread::sleep(SEND_TIMEOUT / 2);
    }
    assert!(
        pauses >= 3,
        "the body came too fast to test anything: {pauses} pauses"
    );
    let h = head_len.unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let mut want = vec![0u8; LEN as usize];
    pattern_at(0, &mut want);
    assert!(got[h..] == want[..], "the body differs");
    let end = up
        .next_end(Duration::from_secs(5))
        .expect("the upstream's answer ended");
    assert!(end.complete && end.written == LEN, "{end:?}");
}

/// HTTP/2 with prior knowledge: the client opens its windows wide, then reads nothing; the
/// connection is reset and the upstream request closed.
#[test]
fn an_h2_client_that_stops_reading_is_cut_with_its_upstream() {
    let up = Flood::start(HUGE);
    let d = dito("", &up);
    let mut h2 = RawH2::connect_with(
        d.addr,
        &[(SETTINGS_INITIAL_WINDOW_SIZE, i32::MAX as u32)],
        |s| shrink_receive_buffer(s, 16 * 1024),
    );
    h2.window_update(0, i32::MAX as u32 - 65_535);
    h2.get(1, "/big");
    let sent = Instant::now();
    assert_cut_on_time(up.next_end(Duration::from_secs(15)), sent);
    assert_client_connection_ended(&mut h2.stream);
}

/// HTTP/2 flow control: a client that reads everything but never opens its stream window
/// stalls the stream, which is reset with its upstream request after the timeout; the
/// connection itself goes on.
#[test]
fn an_h2_stream_without_window_is_reset_with_its_upstream() {
    let up = Flood::start(HUGE);
    let d = dito("", &up);
    let mut h2 = RawH2::connect_with(d.addr, &[], |_| {});
    h2.get(1, "/big");
    let sent = Instant::now();
    assert_cut_on_time(up.next_end(Duration::from_secs(15)), sent);
    let reset = h2.wait_rst_stream(1, Duration::from_secs(10));
    assert_eq!(reset, Some(super::raw_h2::INTERNAL_ERROR));
    h2.ping_roundtrip();
}
