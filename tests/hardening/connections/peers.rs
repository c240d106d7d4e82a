//! Upstreams for the connection tests share this request reader; [`IdleClosing`] is an
//! HTTP/1.1 keep-alive upstream (plain or TLS) that closes a connection left idle for a given
//! time, as gunicorn (2 s) and Node.js (5 s) do, and reports each such close. A std listener
//! on `127.0.0.1:0`, one thread per connection, every read bounded by a timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::support::tls::{provider, Pki};

/// Reads one request head and its Content-Length body from `s`; `None` on EOF, error or
/// timeout (`timed_out` says which of those it was).
pub fn read_request(s: &mut impl Read, buf: &mut Vec<u8>) -> Result<(String, Vec<u8>), bool> {
    let mut tmp = [0u8; 16 * 1024];
    let mut fill = |buf: &mut Vec<u8>| match s.read(&mut tmp) {
        Ok(0) => Err(false),
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Ok(())
        }
        Err(e) => Err(matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        )),
    };
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let len: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0));
    while buf.len() < len {
        fill(buf)?;
    }
    Ok((head, buf.drain(..len).collect()))
}

/// A keep-alive HTTP/1.1 upstream that closes connections idle for `idle`.
pub struct IdleClosing {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::Receiver<usize>,
    stop: Arc<AtomicBool>,
}

impl IdleClosing {
    /// Plain TCP; a close is a FIN.
    pub fn plain(idle: Duration) -> IdleClosing {
        IdleClosing::start(idle, None)
    }

    /// TLS with `pki`'s server certificate; a close is a close_notify, then a FIN.
    pub fn tls(idle: Duration, pki: &Pki) -> IdleClosing {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.server.cert_chain(), pki.server.private_key())
            .unwrap();
        IdleClosing::start(idle, Some(Arc::new(config)))
    }

    fn start(idle: Duration, tls: Option<Arc<ServerConfig>>) -> IdleClosing {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (n, halt) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = stream else { continue };
                let conn = n.fetch_add(1, Ordering::SeqCst) + 1;
                let (tx, tls) = (tx.clone(), tls.clone());
                std::thread::spawn(move || {
                    tcp.set_read_timeout(Some(idle)).unwrap();
                    let idle_closed = match tls {
                        None => serve_until_idle(&mut &tcp, conn),
                        Some(config) => {
                            let session = ServerConnection::new(config).unwrap();
                            let mut s = StreamOwned::new(session, &tcp);
                            let idle_closed = serve_until_idle(&mut s, conn);
                            if idle_closed {
                                s.conn.send_close_notify();
                                let _ = s.flush();
                            }
                            idle_closed
                        }
                    };
                    drop(tcp);
                    if idle_closed {
                        let _ = tx.send(conn);
                    }
                });
            }
        });
        IdleClosing {
            addr,
            accepted,
            closed: rx,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits up to `wait` for the upstream to close an idle connection; its 1-based serial.
    pub fn next_idle_close(&self, wait: Duration) -> Option<usize> {
        self.closed.recv_timeout(wait).ok()
    }
}

impl Drop for IdleClosing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Answers requests with `200` and `conn=N body=B` until the client stays silent for the idle
/// time (true) or leaves (false).
fn serve_until_idle(s: &mut (impl Read + Write), conn: usize) -> bool {
    let mut buf = Vec::new();
    loop {
        match read_request(s, &mut buf) {
            Ok((_, body)) => {
                let text = format!("conn={conn} body={}", String::from_utf8_lossy(&body));
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                if s.write_all(resp.as_bytes())
                    .and_then(|()| s.flush())
                    .is_err()
                {
                    return false;
                }
            }
            Err(timed_out) => return timed_out && buf.is_empty(),
        }
    }
}
