//! An HTTPS upstream for the upstream TLS tests: a std `TcpListener` on `127.0.0.1:0`, one
//! OS thread per connection, rustls `ServerConnection` + `StreamOwned` with blocking IO.
//!
//! Keep-alive HTTP/1.1; every request gets `200` with a small body and headers telling what
//! the server saw: `X-Conn-Id` (1-based per accepted connection, to check pooled reuse),
//! `X-Client-Cert-CN` (the presented client certificate's CN, or `none`), `X-Tls-Version`
//! (`TLSv1.2` / `TLSv1.3`), `X-Sni` (the SNI name, or `none`) and `X-Target` (the request
//! target). Dropping the handle stops the accept loop, shuts every connection down and joins
//! every thread.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::tls::{provider, subject_cn, Pair, Pki};

/// How long a connection waits for the next byte (bounds every thread even without a drop).
const IDLE: Duration = Duration::from_secs(20);

/// Which TLS versions the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.2 and 1.3 (the client picks 1.3 when it can).
    Both,
    Tls12Only,
    Tls13Only,
}

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The server certificate and key.
    pub cert: Pair,
    /// Require a client certificate signed by the test CA.
    pub require_client_cert: bool,
    pub versions: Versions,
}

impl Opts {
    /// The good server certificate, no client certificate, TLS 1.2 and 1.3.
    pub fn new(pki: &Pki) -> Opts {
        Opts {
            cert: pki.server.clone(),
            require_client_cert: false,
            versions: Versions::Both,
        }
    }

    pub fn cert(mut self, cert: &Pair) -> Opts {
        self.cert = cert.clone();
        self
    }

    pub fn mtls(mut self) -> Opts {
        self.require_client_cert = true;
        self
    }

    pub fn versions(mut self, v: Versions) -> Opts {
        self.versions = v;
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub conn: usize,
    pub client_cn: String,
    pub version: String,
    pub sni: String,
    pub target: String,
    pub head: String,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    handshakes: AtomicUsize,
    /// Handshake (or first-read) errors, as rustls' Debug text.
    failures: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
    /// A clone of every accepted socket, shut down on drop to wake its thread.
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running HTTPS upstream.
pub struct HttpsUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpsUpstream {
    pub fn start(pki: &Pki, opts: Opts) -> HttpsUpstream {
        let config = Arc::new(server_config(pki, &opts));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind https upstream");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(&listener, &config, &shared))
        };
        HttpsUpstream {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url_ip(&self) -> String {
        format!("https://127.0.0.1:{}", self.port())
    }

    /// `https://localhost:PORT`.
    pub fn url_name(&self) -> String {
        format!("https://localhost:{}", self.port())
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// The errors that ended connections before their first request.
    pub fn failures(&self) -> Vec<String> {
        self.shared.failures.lock().unwrap().clone()
    }

    /// Waits up to `wait` until at least `n` failures are recorded (a peer can see the alert
    /// before the server thread records its error); all recorded so far.
    pub fn wait_failures(&self, n: usize, wait: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let f = self.failures();
            if f.len() >= n || std::time::Instant::now() >= deadline {
                return f;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every request answered so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for HttpsUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for s in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn server_config(pki: &Pki, opts: &Opts) -> ServerConfig {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.versions {
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Versions::Tls12Only => &[&rustls::version::TLS12],
        Versions::Tls13Only => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = if opts.require_client_cert {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(pki.roots()), provider())
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(opts.cert.cert_chain(), opts.cert.private_key())
        .unwrap()
}

fn accept_loop(listener: &TcpListener, config: &Arc<ServerConfig>, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let conn = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(clone) = stream.try_clone() {
            shared.sockets.lock().unwrap().push(clone);
        }
        let config = config.clone();
        let s = shared.clone();
        let t = std::thread::spawn(move || serve(stream, conn, config, &s));
        shared.threads.lock().unwrap().push(t);
    }
}

fn serve(tcp: TcpStream, conn: usize, config: Arc<ServerConfig>, shared: &Shared) {
    tcp.set_read_timeout(Some(IDLE)).unwrap();
    tcp.set_write_timeout(Some(IDLE)).unwrap();
    let Ok(tls) = ServerConnection::new(config) else {
        return;
    };
    let mut s = StreamOwned::new(tls, tcp);
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            shared.failures.lock().unwrap().push(format!("{e:?}"));
            linger(&s.sock);
            return;
        }
    }
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    let client_cn = s
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| subject_cn(c))
        .unwrap_or_else(|| "none".to_owned());
    let version = match s.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    };
    let sni = s.conn.server_name().unwrap_or("none").to_owned();
    let mut buf = Vec::new();
    for served in 0.. {
        let head = match read_head(&mut s, &mut buf) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => {
                // In TLS 1.3 a refused client certificate shows up here, after the handshake.
                if served == 0 && !shared.stop.load(Ordering::SeqCst) {
                    shared.failures.lock().unwrap().push(e);
                }
                linger(&s.sock);
                return;
            }
        };
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        let close = header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // A Content-Length body is read and discarded (the tests send no chunked bodies).
        let len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            if !matches!(fill(&mut s, &mut buf), Ok(true)) {
                return;
            }
        }
        buf.drain(..len);
        shared.seen.lock().unwrap().push(Seen {
            conn,
            client_cn: client_cn.clone(),
            version: version.clone(),
            sni: sni.clone(),
            target: target.clone(),
            head,
        });
        let body = format!("hello over tls: {target}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             X-Conn-Id: {conn}\r\nX-Client-Cert-CN: {client_cn}\r\nX-Tls-Version: {version}\r\n\
             X-Sni: {sni}\r\nX-Target: {target}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        if s.write_all(resp.as_bytes())
            .and_then(|()| s.flush())
            .is_err()
        {
            return;
        }
        if close {
            s.conn.send_close_notify();
            let _ = s.flush();
            return;
        }
    }
}

/// Ends a failed connection with a FIN after the alert rustls wrote, draining what the peer
/// still sends (a TLS 1.3 client may already have sent its request), so the close is never a
/// reset that could overtake the alert. Bounded: 2 s, or the drop's shutdown.
fn linger(tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut tmp = [0u8; 4096];
    let mut t = tcp;
    while matches!(t.read(&mut tmp), Ok(n) if n > 0) {}
}

/// Reads up to the end of a request head; `Ok(None)` on a clean end before any byte.
fn read_head(
    s: &mut StreamOwned<ServerConnection, TcpStream>,
    buf: &mut Vec<u8>,
) -> Result<Option<String>, String> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
            buf.drain(..i + 4);
            return Ok(Some(head));
        }
        match fill(s, buf) {
            Ok(true) => {}
            Ok(false) if buf.is_empty() => return Ok(None),
            Ok(false) => return Err("closed inside a request head".to_owned()),
            Err(e) => return Err(e),
        }
    }
}

/// Reads more plaintext; `Ok(false)` on EOF (close_notify or TCP close).
fn fill(
    s: &mut StreamOwned<ServerConnection, TcpStream>,
    buf: &mut Vec<u8>,
) -> Result<bool, String> {
    let mut tmp = [0u8; 16384];
    match s.read(&mut tmp) {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
