//! Purpose-built upstreams for the proxy tests: a std `TcpListener` whose answers are
//! scripted per request, so a test can make an upstream misbehave in exactly one way (close a
//! pooled connection without answering, send `Connection: close` yet keep the socket open,
//! hold a response until released) and observe which connection each request arrived on.
//!
//! One OS thread per connection; every read is bounded by a timeout, so no thread outlives a
//! test by more than that.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long an upstream connection waits for the next request byte.
const IDLE: Duration = Duration::from_secs(20);

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Req {
    /// 1-based serial of the connection it arrived on (per upstream).
    pub conn: usize,
    /// 1-based index of the request on that connection.
    pub seq: usize,
    /// The request head, up to and including the blank line.
    pub head: String,
    /// The body (Content-Length or chunked, decoded).
    pub body: Vec<u8>,
}

impl Req {
    /// The request line's target.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The first value of a header, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What the upstream does with a request.
pub enum Reply {
    /// Write these bytes and keep reading requests on the connection.
    Keep(Vec<u8>),
    /// Write these bytes, then close (FIN).
    Close(Vec<u8>),
    /// Close without writing anything.
    Drop,
}

/// `200 OK` with a `Content-Length` body, keep-alive.
pub fn ok(body: &str) -> Reply {
    Reply::Keep(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// A running scripted upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Mutex<mpsc::Receiver<Req>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    /// Starts on `127.0.0.1:0`.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Upstream {
        Upstream::bind("127.0.0.1:0", handler)
    }

    /// Starts on `addr` (e.g. `[::1]:0`).
    pub fn bind(addr: &str, handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind(addr).expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let accepted = accepted.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    let handler = handler.clone();
                    let tx = tx.clone();
                    std::thread::spawn(move || serve(stream, conn, &*handler, &tx));
                }
            });
        }
        Upstream {
            addr,
            accepted,
            seen: Mutex::new(rx),
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The next request the upstream received (reported before it is answered), waiting up to
    /// `wait`.
    pub fn next_request(&self, wait: Duration) -> Option<Req> {
        self.seen.lock().unwrap().recv_timeout(wait).ok()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(mut stream: TcpStream, conn: usize, handler: &Handler, tx: &mpsc::Sender<Req>) {
    stream.set_read_timeout(Some(IDLE)).unwrap();
    let mut buf = Vec::new();
    let mut seq = 0;
    loop {
        let Some(req) = read_request(&mut stream, &mut buf, conn, seq + 1) else {
            return;
        };
        seq += 1;
        let _ = tx.send(req.clone());
        match handler(&req) {
            Reply::Keep(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::Close(bytes) => {
                let _ = stream.write_all(&bytes);
                let _ = stream.shutdown(Shutdown::Write);
                // Drain what the peer still sends so the close stays a FIN, not a reset.
                let mut tmp = [0u8; 4096];
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                while matches!(stream.read(&mut tmp), Ok(n) if n > 0) {}
                return;
            }
            Reply::Drop => return,
        }
    }
}

/// Reads one request (head and body); `None` on EOF, error or timeout.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, conn: usize, seq: usize) -> Option<Req> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut req = Req {
        conn,
        seq,
        head,
        body: Vec::new(),
    };
    if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().ok()?;
        while buf.len() < n {
            fill(stream, buf)?;
        }
        req.body = buf.drain(..n).collect();
    } else if req
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(stream, buf)?;
            };
            let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            buf.drain(..line_end + 2);
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailer section up to the blank line.
                loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        let blank = i == 0;
                        buf.drain(..i + 2);
                        if blank {
                            return Some(req);
                        }
                        continue;
                    }
                    fill(stream, buf)?;
                }
            }
            while buf.len() < size + 2 {
                fill(stream, buf)?;
            }
            req.body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    }
    Some(req)
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut tmp = [0u8; 65536];
    match stream.read(&mut tmp) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Some(())
        }
    }
}

/// A gate a handler can wait at (holding its connection) until the test opens it.
pub struct Gate {
    rx: Mutex<mpsc::Receiver<()>>,
}

impl Gate {
    /// A closed gate and the sender that opens it once per `send(())`.
    pub fn new() -> (mpsc::Sender<()>, Arc<Gate>) {
        let (tx, rx) = mpsc::channel();
        (tx, Arc::new(Gate { rx: Mutex::new(rx) }))
    }

    /// Waits for one opening, at most `limit`; true when opened.
    pub fn wait(&self, limit: Duration) -> bool {
        self.rx.lock().unwrap().recv_timeout(limit).is_ok()
    }
}
