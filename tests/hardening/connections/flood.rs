//! An upstream that answers each request with a body of a given length (`dito-echo`'s
//! pattern, byte i = `b'a' + i % 26`) written as fast as the proxy takes it, and reports when
//! the writing ended and how: all was sent, or the proxy closed the connection. A WebSocket
//! upgrade request gets a `101` instead, and the same bytes flow through the tunnel. A std
//! listener on `127.0.0.1:0`, one thread per connection, reads and writes bounded by a timeout.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::peers::read_request;

/// Longest any read or write waits.
const IO_LIMIT: Duration = Duration::from_secs(20);

/// How a [`Flood`] answer ended.
#[derive(Debug, Clone, Copy)]
pub struct FloodEnd {
    pub at: Instant,
    /// Every body byte was written.
    pub complete: bool,
    pub written: u64,
}

/// An upstream that answers each request with `len` body bytes (`b'a' + i % 26`).
pub struct Flood {
    pub addr: SocketAddr,
    ends: mpsc::Receiver<FloodEnd>,
    stop: Arc<AtomicBool>,
}

impl Flood {
    pub fn start(len: u64) -> Flood {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let halt = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut tcp) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    tcp.set_read_timeout(Some(IO_LIMIT)).unwrap();
                    tcp.set_write_timeout(Some(IO_LIMIT)).unwrap();
                    let mut buf = Vec::new();
                    while let Ok((head, _)) = read_request(&mut tcp, &mut buf) {
                        let upgrade = head.to_ascii_lowercase().contains("upgrade: websocket");
                        let end = flood(&mut tcp, len, upgrade);
                        let _ = tx.send(end);
                        if !end.complete {
                            return;
                        }
                    }
                });
            }
        });
        Flood {
            addr,
            ends: rx,
            stop,
        }
    }

    /// Waits up to `wait` for an answer to end.
    pub fn next_end(&self, wait: Duration) -> Option<FloodEnd> {
        self.ends.recv_timeout(wait).ok()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The body pattern of `dito-echo`, at offset `from`.
pub fn pattern_at(from: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = b'a' + ((from + i as u64) % 26) as u8;
    }
}

fn flood(tcp: &mut TcpStream, len: u64, upgrade: bool) -> FloodEnd {
    let head = if upgrade {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .to_owned()
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
    };
    let mut written = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut ok = tcp.write_all(head.as_bytes()).is_ok();
    while ok && written < len {
        let n = chunk.len().min((len - written) as usize);
        pattern_at(written, &mut chunk[..n]);
        ok = tcp.write_all(&chunk[..n]).is_ok();
        if ok {
            written += n as u64;
        }
    }
    FloodEnd {
        at: Instant::now(),
        complete: ok,
        written,
    }
}
