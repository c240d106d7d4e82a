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

/// The `ms` query parameter (0 when absent or not a number).
fn ms(query: &str) -> Duration {
    let ms = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

/// The pattern bytes `[from, from + len)`.
fn pattern_at(from: usize, len: usize) -> Bytes {
    (from..from + len)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// What follows a response head.
enum Body {
    Empty,
    Data(Bytes),
    /// N pattern bytes.
    Pattern(usize),
    /// 10000 pattern bytes, then RST_STREAM INTERNAL_ERROR.
    CutByReset,
}

async fn handle(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let (parts, mut body) = req.into_parts();
    // Every route reads the request body to its end first.
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    let (head, body) = route(&parts, received, trailers.as_ref()).await;
    // A HEAD request gets the head alone (with the length a GET would have).
    if parts.method == http::Method::HEAD || matches!(body, Body::Empty) {
        respond.send_response(head, true)?;
        return Ok(());
    }
    let mut out = respond.send_response(head, false)?;
    match body {
        Body::Empty => Ok(()),
        Body::Data(data) => send_all(&mut out, data, true).await,
        Body::Pattern(n) => send_pattern(&mut out, n).await,
        Body::CutByReset => {
            send_all(&mut out, pattern_at(0, 10_000), false).await?;
            // A reset discards DATA still queued in h2: give the connection task time to
            // write the 10000 bytes (they fit the peer's initial window) before resetting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            out.send_reset(h2::Reason::INTERNAL_ERROR);
            Ok(())
        }
    }
}

/// The response for a request whose body was `received`.
async fn route(
    parts: &http::request::Parts,
    received: Vec<u8>,
    trailers: Option<&http::HeaderMap>,
) -> (Response<()>, Body) {
    let path = parts.uri.path();
    let status = |code: u16| Response::builder().status(code);
    let text = |code: u16, text: String| {
        let head = status(code)
            .header("content-type", "text/plain")
            .header("content-length", text.len())
            .body(())
            .unwrap();
        (head, Body::Data(Bytes::from(text)))
    };
    let octets = |len: Option<usize>| {
        let b = status(200).header("content-type", "application/octet-stream");
        match len {
            Some(n) => b.header("content-length", n),
            None => b,
        }
        .body(())
        .unwrap()
    };
    if path == "/echo-body" {
        let n = received.len();
        let body = if n == 0 {
            Body::Empty
        } else {
            Body::Data(Bytes::from(received))
        };
        return (octets(Some(n)), body);
    }
    if path.starts_with("/echo") {
        let target = parts
            .uri
            .path_and_query()
            .map_or(path, |p| p.as_str())
            .to_owned();
        let mut out = format!(
            "method: {}\ntarget: {target}\nversion: HTTP/2.0\nauthority: {}\nscheme: {}\n",
            parts.method,
            parts.uri.authority().map_or("", |a| a.as_str()),
            parts.uri.scheme_str().unwrap_or(""),
        );
        for (n, v) in &parts.headers {
            out.push_str(&format!(
                "header: {}: {}\n",
                n.as_str(),
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        out.push_str(&format!("body-length: {}\n", received.len()));
        for (n, v) in trailers.into_iter().flatten() {
            out.push_str(&format!(
                "trailer: {}: {}\n",
                n.as_str(),
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        return text(200, out);
    }
    if let Some(Ok(n)) = path.strip_prefix("/bytes/").map(str::parse::<usize>) {
        return (octets(Some(n)), Body::Pattern(n));
    }
    if let Some(Ok(n)) = path.strip_prefix("/nolength/").map(str::parse::<usize>) {
        return (octets(None), Body::Pattern(n));
    }
    if path == "/slow-head" || path == "/hold" {
        tokio::time::sleep(ms(parts.uri.query().unwrap_or(""))).await;
        let body = if path == "/hold" { "ok" } else { "slow\n" };
        return text(200, body.to_owned());
    }
    if path == "/reset-mid-body" {
        return (octets(Some(1_000_000)), Body::CutByReset);
    }
    if let Some(Ok(code)) = path.strip_prefix("/status/").map(str::parse::<u16>) {
        if (200..=999).contains(&code) {
            return (status(code).body(()).unwrap(), Body::Empty);
        }
    }
    text(404, format!("no such endpoint: {path}\n"))
}

/// Sends `n` pattern bytes and ends the stream.
async fn send_pattern(out: &mut SendStream<Bytes>, n: usize) -> Result<(), h2::Error> {
    if n == 0 {
        return send_all(out, Bytes::new(), true).await;
    }
    let mut pos = 0;
    while pos < n {
        let len = CHUNK.min(n - pos);
        send_all(out, pattern_at(pos, len), pos + len == n).await?;
        pos += len;
    }
    Ok(())
}

/// Sends `data` within the flow-control capacity the peer grants; `end` ends the stream.
async fn send_all(
    out: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        if end {
            out.send_data(data, true)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        out.reserve_capacity(data.len().min(CHUNK));
        let cap = match std::future::poll_fn(|cx| out.poll_capacity(cx)).await {
            Some(cap) => cap?,
            None => return Err(h2::Error::from(h2::Reason::CANCEL)),
        };
        if cap == 0 {
            continue;
        }
        let piece = data.split_to(cap.min(data.len()));
        out.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}
