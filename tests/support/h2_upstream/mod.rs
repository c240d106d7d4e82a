//! An HTTP/2-only upstream for the `force_http2` tests: the `h2` server on a tokio
//! current-thread runtime on its own std thread, listening on `127.0.0.1:0`, either with prior
//! knowledge on plain TCP or behind rustls (through `tokio-rustls`) with ALPN `h2` only. It
//! never speaks HTTP/1.1: a client that does fails the h2 handshake (counted in
//! [`H2Upstream::failures`]).
//!
//! It records the TCP connections it accepted, the most streams open at once (a stream counts
//! from its accept until its handler has queued the end of the response), and per request the
//! pseudo-header fields and the header list.
//!
//! Routes (the body pattern is `dito-echo`'s, byte i = `b'a' + i % 26`):
//! - `/echo…` → 200, text lines `method: M`, `target: /path?query`, `version: HTTP/2.0`,
//!   `authority: A`, `scheme: S`, then `header: name: value` per field, `body-length: N`,
//!   and `trailer: name: value` per trailer field;
//! - `/bytes/N` → 200 with `content-length` and N pattern bytes; `/nolength/N` → the same
//!   without `content-length`;
//! - `/echo-body` → 200 with the request body (read releasing flow-control capacity);
//! - `/slow-head?ms=N` → the head after N ms; `/hold?ms=N` → the stream stays open N ms, then
//!   200 `ok`;
//! - `/reset-mid-body` → `content-length: 1000000`, 10000 pattern bytes, then RST_STREAM
//!   INTERNAL_ERROR;
//! - `/stall/N` → `content-length: 2N`, N pattern bytes, then silence (30 s at most);
//! - `/drip/N?ms=M` → `content-length: N`, the N pattern bytes one every M ms;
//! - `/status/N` → status N, empty body; anything else → 404.
//!
//! Options: the announced `max_concurrent_streams` (default 100), a delay before the server's
//! SETTINGS, and GOAWAY after N streams on a connection.
//!
//! Dropping the handle sets a flag the accept loop checks at least every 50 ms; the runtime
//! (with every connection task) is dropped when the loop ends, and the thread is joined.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::{provider, Pki};

mod routes;
use routes::handle;

/// The largest DATA frame payload the handlers queue at once.
const CHUNK: usize = 16 * 1024;
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// How long a TLS handshake or an h2 handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Serve TLS with ALPN `h2` only, with the `Pki`'s server certificate.
    pub tls: bool,
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` the server announces.
    pub max_concurrent_streams: u32,
    /// How long the server waits after accepting (and the TLS handshake) before it starts
    /// HTTP/2, i.e. before its SETTINGS leave: a slow link's first round trip, during which
    /// a client does not know the server's limits yet.
    pub settings_delay: Duration,
    /// Send GOAWAY (graceful shutdown) on each connection as its N-th stream arrives.
    pub goaway_after: Option<usize>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            tls: false,
            max_concurrent_streams: 100,
            settings_delay: Duration::ZERO,
            goaway_after: None,
        }
    }
}

impl Opts {
    /// Plain TCP, HTTP/2 with prior knowledge.
    pub fn plain() -> Opts {
        Opts::default()
    }

    /// TLS with ALPN `h2` only.
    pub fn tls() -> Opts {
        Opts {
            tls: true,
            ..Opts::default()
        }
    }

    pub fn max_concurrent_streams(mut self, n: u32) -> Opts {
        self.max_concurrent_streams = n;
        self
    }

    pub fn settings_delay(mut self, d: Duration) -> Opts {
        self.settings_delay = d;
        self
    }

    pub fn goaway_after(mut self, n: usize) -> Opts {
        self.goaway_after = Some(n);
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// 1-based serial of the TCP connection it arrived on.
    pub conn: usize,
    pub method: String,
    /// `:scheme` (empty when absent).
    pub scheme: String,
    /// `:authority` (empty when absent).
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// The regular header fields, names lowercase as HTTP/2 carries them.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// HTTP/2 connections that ended (by either side).
    closed: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    /// The most streams open at once on any one connection.
    max_open_per_conn: AtomicUsize,
    /// TLS or h2 handshake failures (and connection errors), as Debug text.
    failures: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
}

/// A running HTTP/2 upstream.
pub struct H2Upstream {
    pub addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl H2Upstream {
    /// Plain h2 (prior knowledge) with the defaults.
    pub fn plain() -> H2Upstream {
        H2Upstream::start(None, Opts::plain())
    }

    /// TLS (ALPN `h2`) with the `Pki`'s server certificate and the defaults.
    pub fn tls(pki: &Pki) -> H2Upstream {
        H2Upstream::start(Some(pki), Opts::tls())
    }

    /// Starts with `opts`; `pki` is required when `opts.tls`.
    pub fn start(pki: Option<&Pki>, opts: Opts) -> H2Upstream {
        let acceptor = opts.tls.then(|| {
            let pki = pki.expect("a TLS h2 upstream needs a Pki");
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(pki.server.cert_chain(), pki.server.private_key())
                .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind h2 upstream");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            let h2 = H2Settings {
                max_streams: opts.max_concurrent_streams,
                delay: opts.settings_delay,
                goaway_after: opts.goaway_after,
            };
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(accept_loop(std_listener, acceptor, h2, shared));
                // Dropping the runtime drops every connection task and closes its socket.
            })
        };
        H2Upstream {
            addr,
            tls: opts.tls,
            shared,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `host:port` as in [`H2Upstream::url`] (the `:authority` Dito should send).
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// HTTP/2 connections that have ended so far (closed by either side).
    pub fn closed(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// The most streams that were open at once so far.
    pub fn max_open_streams(&self) -> usize {
        self.shared.max_open.load(Ordering::SeqCst)
    }

    /// The most streams that were open at once on any one connection so far.
    pub fn max_open_streams_per_connection(&self) -> usize {
        self.shared.max_open_per_conn.load(Ordering::SeqCst)
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Handshake failures and connection errors so far.
    pub fn failures(&self) -> Vec<String> {
        self.shared.failures.lock().unwrap().clone()
    }

    /// Every request received so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests whose `:path` starts with `prefix`.
    pub fn seen_path(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a connection starts HTTP/2.
#[derive(Clone, Copy)]
struct H2Settings {
    max_streams: u32,
    delay: Duration,
    goaway_after: Option<usize>,
}

async fn accept_loop(
    std_listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    h2: H2Settings,
    shared: Arc<Shared>,
) {
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok(accepted) = tokio::time::timeout(POLL, listener.accept()).await else {
            continue;
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let conn = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve(tcp, conn, h2, shared).await,
                Some(a) => match tokio::time::timeout(HANDSHAKE, a.accept(tcp)).await {
                    Ok(Ok(tls)) => serve(tls, conn, h2, shared).await,
                    Ok(Err(e)) => fail(&shared, format!("conn {conn}: tls: {e:?}")),
                    Err(_) => fail(&shared, format!("conn {conn}: tls handshake timed out")),
                },
            }
        });
    }
}

fn fail(shared: &Shared, what: String) {
    shared.failures.lock().unwrap().push(what);
}

/// One HTTP/2 connection: every stream is handled on its own task.
async fn serve<T>(io: T, conn: usize, settings: H2Settings, shared: Arc<Shared>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if !settings.delay.is_zero() {
        tokio::time::sleep(settings.delay).await;
    }
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(settings.max_streams)
        .handshake::<_, Bytes>(io);
    let mut h2 = match tokio::time::timeout(HANDSHAKE, handshake).await {
        Ok(Ok(h2)) => h2,
        Ok(Err(e)) => return fail(&shared, format!("conn {conn}: h2 handshake: {e:?}")),
        Err(_) => return fail(&shared, format!("conn {conn}: h2 handshake timed out")),
    };
    let open_here = Arc::new(AtomicUsize::new(0));
    let mut streams = 0;
    while let Some(next) = h2.accept().await {
        let (req, respond) = match next {
            Ok(x) => x,
            Err(e) => {
                // A peer going away (GOAWAY, close) is not a failure of interest.
                if !e.is_go_away() && !e.is_io() {
                    fail(&shared, format!("conn {conn}: {e:?}"));
                }
                break;
            }
        };
        streams += 1;
        if settings.goaway_after == Some(streams) {
            // GOAWAY now; the streams already open still complete (accept keeps driving).
            h2.graceful_shutdown();
        }
        let guard = OpenStream::new(&shared, &open_here);
        shared.seen.lock().unwrap().push(seen(conn, &req));
        tokio::spawn(async move {
            // A reset from the peer ends the handler early; nothing to record.
            let _ = handle(req, respond).await;
            drop(guard);
        });
    }
    shared.closed.fetch_add(1, Ordering::SeqCst);
}

/// Counts a stream as open (in all and on its connection) while it lives.
struct OpenStream {
    shared: Arc<Shared>,
    conn: Arc<AtomicUsize>,
}

impl OpenStream {
    fn new(shared: &Arc<Shared>, conn: &Arc<AtomicUsize>) -> OpenStream {
        let now = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_open.fetch_max(now, Ordering::SeqCst);
        let here = conn.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_open_per_conn.fetch_max(here, Ordering::SeqCst);
        OpenStream {
            shared: shared.clone(),
            conn: conn.clone(),
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.conn.fetch_sub(1, Ordering::SeqCst);
    }
}

fn seen(conn: usize, req: &Request<RecvStream>) -> Seen {
    let uri = req.uri();
    Seen {
        conn,
        method: req.method().as_str().to_owned(),
        scheme: uri.scheme_str().unwrap_or("").to_owned(),
        authority: uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    }
}
