//! A WebSocket test upstream for the tunnel tests (spec §13), plain or TLS: a std
//! `TcpListener` on `127.0.0.1:0`, one OS thread with a small stack per connection (so a
//! thousand tunnels fit a 2-core box), rustls with a certificate of the test PKI for `wss://`.
//!
//! It reads each HTTP head itself, so the same server answers plain requests too:
//! - no WebSocket upgrade → `200`, a JSON report of the request (method, target, version,
//!   every header in order, and `conn`: 1-based per accepted connection), keep-alive;
//! - a target containing `/deny` → `403` with body `denied\n` (upgrade or not), keep-alive;
//! - an upgrade to a target containing `/bad101` → a `101` without `Upgrade`;
//! - any other upgrade → its own handshake (`derive_accept_key`, the first offered
//!   subprotocol echoed), then by target: `/report` sends the report of the handshake as the
//!   first text message, `/close4001` closes with 4001 "bye" at once; then every target echoes
//!   text and binary messages (any size up to 64 MiB) and answers a ping with the automatic
//!   pong plus a text `ping-seen:<payload>`.
//!
//! The close code and reason each tunnel received (or that it ended without a close frame) are
//! recorded for the tests. Every read and write is bounded by [`IDLE`]; dropping the handle
//! stops the accept loop, shuts every socket down and joins every thread.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::tls::{provider, Pki};

/// How long a connection waits for the next byte (bounds every thread even without a drop).
pub const IDLE: Duration = Duration::from_secs(20);
/// Stack of a connection thread.
const STACK: usize = 256 * 1024;
/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 64 << 20;

/// How a tunnel ended, as the upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The request target of the upgrade.
    pub target: String,
    /// The close code received, `None` when the tunnel ended without a close frame.
    pub code: Option<u16>,
    /// The close reason, or what ended the tunnel.
    pub reason: String,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    upgrades: AtomicUsize,
    /// Every request head, as its report.
    seen: Mutex<Vec<Value>>,
    closed: Mutex<Vec<Closed>>,
    /// A clone of every open connection's socket by connection number: shut down when its
    /// thread ends (so the peer sees the end) or on drop (to wake the thread).
    sockets: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running WebSocket upstream.
pub struct WsUpstream {
    pub addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl WsUpstream {
    /// Plain `ws://`.
    pub fn start() -> WsUpstream {
        WsUpstream::start_with(None)
    }

    /// `wss://` with the PKI's server certificate (valid for `localhost` and `127.0.0.1`).
    pub fn start_tls(pki: &Pki) -> WsUpstream {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.server.cert_chain(), pki.server.private_key())
            .unwrap();
        WsUpstream::start_with(Some(Arc::new(config)))
    }

    fn start_with(tls: Option<Arc<ServerConfig>>) -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind ws upstream");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let is_tls = tls.is_some();
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(&listener, tls.as_ref(), &shared))
        };
        WsUpstream {
            addr,
            tls: is_tls,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `ws://127.0.0.1:PORT` or `wss://localhost:PORT`.
    pub fn url(&self) -> String {
        if self.tls {
            format!("wss://localhost:{}", self.addr.port())
        } else {
            format!("ws://{}", self.addr)
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Handshakes answered with a real 101 so far.
    pub fn upgrades(&self) -> usize {
        self.shared.upgrades.load(Ordering::SeqCst)
    }

    /// Reports of every request head received so far, in order.
    pub fn seen(&self) -> Vec<Value> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How the tunnels ended so far.
    pub fn closed(&self) -> Vec<Closed> {
        self.shared.closed.lock().unwrap().clone()
    }

    /// Waits up to `wait` until at least `n` tunnels have ended; all recorded so far.
    pub fn wait_closed(&self, n: usize, wait: Duration) -> Vec<Closed> {
        let deadline = Instant::now() + wait;
        loop {
            let c = self.closed();
            if c.len() >= n || Instant::now() >= deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for (_, s) in self.shared.sockets.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, tls: Option<&Arc<ServerConfig>>, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let conn = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = stream.set_read_timeout(Some(IDLE));
        let _ = stream.set_write_timeout(Some(IDLE));
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            shared.sockets.lock().unwrap().insert(conn, clone);
        }
        let tls = tls.cloned();
        let s = shared.clone();
        let t = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                serve_tcp(stream, conn, tls, &s);
                if let Some(own) = s.sockets.lock().unwrap().remove(&conn) {
                    let _ = own.shutdown(Shutdown::Both);
                }
            })
            .expect("spawn ws upstream thread");
        shared.threads.lock().unwrap().push(t);
    }
}

/// One connection, plain or TLS.
fn serve_tcp(stream: TcpStream, conn: usize, tls: Option<Arc<ServerConfig>>, s: &Shared) {
    match tls {
        None => serve(stream, conn, s),
        Some(config) => {
            let Ok(server) = ServerConnection::new(config) else {
                return;
            };
            let mut tls = StreamOwned::new(server, stream);
            while tls.conn.is_handshaking() {
                if tls.conn.complete_io(&mut tls.sock).is_err() {
                    return;
                }
            }
            serve(tls, conn, s);
        }
    }
}

/// One request head.
struct Head {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
}

impl Head {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn report(&self, conn: usize) -> Value {
        json!({
            "conn": conn,
            "method": self.method,
            "target": self.target,
            "version": format!("HTTP/1.{}", self.version),
            "headers": self.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        })
    }
}

/// Keep-alive HTTP until an upgrade, which turns the connection into a WebSocket.
fn serve<S: Read + Write>(mut s: S, conn: usize, shared: &Shared) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut s, &mut buf) else {
            return;
        };
        let report = head.report(conn);
        shared.seen.lock().unwrap().push(report.clone());
        // A Content-Length body is read and discarded (the tests send no chunked bodies).
        let len: usize = head
            .all("content-length")
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            if !fill(&mut s, &mut buf) {
                return;
            }
        }
        buf.drain(..len);
        let upgrade =
            head.has_token("connection", "upgrade") && head.has_token("upgrade", "websocket");
        let answer = if head.target.contains("/deny") {
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\ndenied\n"
                .to_owned()
        } else if upgrade && head.target.contains("/bad101") {
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n".to_owned()
        } else if upgrade {
            let key = head.all("sec-websocket-key").next().unwrap_or("");
            let protocol = head
                .all("sec-websocket-protocol")
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .find(|p| !p.is_empty())
                .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
                .unwrap_or_default();
            let accept = derive_accept_key(key.as_bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n{protocol}X-Upstream: ws-test\r\n\r\n"
            );
            // Counted before the 101 is written, so a test that has seen the 101 sees the
            // count too.
            shared.upgrades.fetch_add(1, Ordering::SeqCst);
            if s.write_all(response.as_bytes())
                .and_then(|()| s.flush())
                .is_err()
            {
                shared.upgrades.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            tunnel(s, buf, &head.target, &report, shared);
            return;
        } else {
            let body = report.to_string();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if s.write_all(answer.as_bytes())
            .and_then(|()| s.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The WebSocket side: `early` are bytes read after the upgrade head.
fn tunnel<S: Read + Write>(s: S, early: Vec<u8>, target: &str, report: &Value, shared: &Shared) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .read_buffer_size(16 * 1024);
    let mut ws = WebSocket::from_partially_read(s, early, Role::Server, Some(config));
    let record = |code: Option<u16>, reason: String| {
        shared.closed.lock().unwrap().push(Closed {
            target: target.to_owned(),
            code,
            reason,
        });
    };
    let first = if target.contains("/report") {
        Some(Message::text(report.to_string()))
    } else if target.contains("/close4001") {
        Some(Message::Close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "bye".into(),
        })))
    } else {
        None
    };
    if let Some(m) = first {
        if let Err(e) = ws.send(m) {
            record(None, format!("send: {e}"));
            return;
        }
    }
    let mut recorded = false;
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    break;
                }
            }
            Ok(Message::Ping(p)) => {
                let seen = format!("ping-seen:{}", String::from_utf8_lossy(&p));
                if ws.send(Message::text(seen)).is_err() {
                    break;
                }
            }
            Ok(Message::Close(frame)) => {
                if !recorded {
                    recorded = true;
                    match frame {
                        Some(f) => record(Some(u16::from(f.code)), f.reason.to_string()),
                        None => record(None, "close frame without a code".to_owned()),
                    }
                }
                // tungstenite queued the close reply; reading on flushes it and ends.
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(e) => {
                if !recorded {
                    record(None, e.to_string());
                }
                break;
            }
        }
    }
}

/// Reads up to the end of a request head; `None` on EOF, timeout or garbage.
fn read_head<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let head = Head {
                    method: req.method.unwrap_or("").to_owned(),
                    target: req.path.unwrap_or("").to_owned(),
                    version: req.version.unwrap_or(1),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                buf.drain(..n);
                return Some(head);
            }
            Ok(httparse::Status::Partial) => {
                if !fill(s, buf) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

/// Reads more bytes; false on EOF or error.
fn fill<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut tmp = [0u8; 16384];
    match s.read(&mut tmp) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
    }
}
