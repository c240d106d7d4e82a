//! The CPU profiler behind `-enable-profiler` (spec §1, §2 `profiler.listen`).
//!
//! [`start`] binds `profiler.listen` on the control thread at startup (a bind failure is a
//! startup error) and hands the listener to a plain std thread, `dito-profiler`, which runs a
//! tiny blocking HTTP/1.1 server, one connection at a time, `Connection: close` always. It
//! never touches the workers or the control thread: `pprof` samples every thread of the process
//! through `SIGPROF`, so nothing on the data path knows a profile is being taken.
//!
//! Endpoints (GET only): `/debug/pprof/profile?seconds=N` answers Go's pprof protobuf (what
//! `go tool pprof` reads; not gzip-compressed, which `go tool pprof` accepts as well), and
//! `/debug/pprof/flamegraph?seconds=N` an SVG flame graph. `seconds` is 1..=300 (default 30);
//! anything else is a 400. Other paths are 404, other methods 405. Only one profile runs at a
//! time (the sampler is process-wide): it runs on its own short-lived thread so the server
//! can answer a second profile request with 409 instead of leaving it hanging.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pprof::protos::Message;

use crate::observe::log::STARTUP;

/// Sampling frequency: 99 Hz, not 100, so samples do not beat with 100 Hz timers.
const FREQUENCY: i32 = 99;
/// Frames from these libraries are not unwound: libgcc's unwinder is not signal-safe inside
/// them, and some distributions ship wrong DWARF for the vDSO (pprof's documentation).
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];
/// `seconds` when the query does not say.
const DEFAULT_SECONDS: u64 = 30;
/// The longest profile a request may ask for.
const MAX_SECONDS: u64 = 300;
/// Largest request head read; a longer one is a 400.
const MAX_HEAD: usize = 8192;
/// How long a client may take to send its request head (the server is serial).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a response may stall.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `listen` and starts the profiler thread; returns the bound address (the real port
/// when `listen` says port 0) after logging `profiler listening on ADDR`.
pub fn start(listen: SocketAddr) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| format!("profiler.listen: cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("profiler.listen: {listen}: {e}"))?;
    std::thread::Builder::new()
        .name("dito-profiler".to_owned())
        .spawn(move || serve(listener))
        .map_err(|e| format!("profiler: cannot start its thread: {e}"))?;
    tracing::info!(target: STARTUP, "profiler listening on {addr}");
    Ok(addr)
}

fn serve(listener: TcpListener) {
    let busy = Arc::new(AtomicBool::new(false));
    loop {
        match listener.accept() {
            Ok((stream, peer)) => handle(stream, peer, &busy),
            Err(e) => {
                tracing::warn!("profiler: accept failed: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// What a profile request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Go's pprof protobuf.
    Pprof,
    /// An SVG flame graph.
    Flamegraph,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Pprof => "pprof",
            Format::Flamegraph => "flame graph",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProfileRequest {
    format: Format,
    seconds: u64,
}

/// A short answer other than a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    reason: &'static str,
    message: String,
}

impl Reply {
    fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            reason,
            message: message.into(),
        }
    }
}

fn handle(mut stream: TcpStream, peer: SocketAddr, busy: &Arc<AtomicBool>) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let request = match read_head(&mut stream).and_then(|head| parse(&head)) {
        Ok(r) => r,
        Err(reply) => return send_reply(&mut stream, &reply),
    };
    if busy
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        let reply = Reply::new(
            409,
            "Conflict",
            "a profile is already being taken; retry when it ends",
        );
        return send_reply(&mut stream, &reply);
    }
    let flag = Busy(busy.clone());
    let spawned = std::thread::Builder::new()
        .name("dito-profile".to_owned())
        .spawn(move || profile(stream, peer, request, flag));
    if let Err(e) = spawned {
        // The closure (with the stream and the flag) was dropped: the client sees a close.
        tracing::warn!("profiler: cannot start a profile thread: {e}");
    }
}

/// Frees the sampler when dropped: once the profile is taken (or failed), or when its thread
/// could not start.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Takes the profile, frees the sampler, then answers (so a client that got its answer may
/// start the next profile at once).
fn profile(mut stream: TcpStream, peer: SocketAddr, request: ProfileRequest, busy: Busy) {
    tracing::info!(
        "profiler: {}s CPU profile ({}) for {peer}",
        request.seconds,
        request.format.name()
    );
    // pprof's flame graph code unwraps an inferno error: a panic becomes a 500, not a close.
    let taken = std::panic::catch_unwind(|| take(request))
        .unwrap_or_else(|_| Err("the profiler panicked".to_owned()));
    drop(busy);
    match taken {
        Ok((content_type, body)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Content-Disposition: attachment; filename=\"{}\"\r\nConnection: close\r\n\r\n",
                body.len(),
                match request.format {
                    Format::Pprof => "profile",
                    Format::Flamegraph => "flamegraph.svg",
                }
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
        Err(msg) => {
            tracing::warn!("profiler: {msg}");
            send_reply(&mut stream, &Reply::new(500, "Internal Server Error", msg));
        }
    }
}

/// Samples the whole process for the requested time and encodes the result.
fn take(request: ProfileRequest) -> Result<(&'static str, Vec<u8>), String> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(BLOCKLIST)
        .build()
        .map_err(|e| format!("cannot start sampling: {e}"))?;
    // The sampling window itself: the profile covers exactly this time.
    std::thread::sleep(Duration::from_secs(request.seconds));
    let report = guard
        .report()
        .build()
        .map_err(|e| format!("cannot build the report: {e}"))?;
    drop(guard);
    match request.format {
        Format::Pprof => {
            let profile = report
                .pprof()
                .map_err(|e| format!("cannot encode the profile: {e}"))?;
            let bytes = profile
                .write_to_bytes()
                .map_err(|e| format!("cannot encode the profile: {e}"))?;
            Ok(("application/octet-stream", bytes))
        }
        Format::Flamegraph => {
            let mut svg = Vec::new();
            report
                .flamegraph(&mut svg)
                .map_err(|e| format!("cannot draw the flame graph: {e}"))?;
            if svg.is_empty() {
                // pprof writes nothing for a profile without samples: say so in the SVG.
                svg = format!(
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"40\">\
                     <text x=\"10\" y=\"25\">no CPU samples in {}s: the process was idle</text>\
                     </svg>\n",
                    request.seconds
                )
                .into_bytes();
            }
            Ok(("image/svg+xml", svg))
        }
    }
}

/// Reads up to the end of the request head (the body, if any, is ignored).
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Reply> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(Reply::new(400, "Bad Request", "incomplete request")),
            Ok(n) => n,
            Err(e) => return Err(Reply::new(400, "Bad Request", format!("read: {e}"))),
        };
        head.extend_from_slice(&buf[..n]);
        if memchr::memmem::find(&head, b"\r\n\r\n").is_some() {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(Reply::new(400, "Bad Request", "request head too large"));
        }
    }
}

/// Routes a request head: a profile to take, or the answer to send instead.
fn parse(head: &[u8]) -> Result<ProfileRequest, Reply> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let (method, target) = match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => (req.method, req.path),
        _ => (None, None),
    };
    let (Some(method), Some(target)) = (method, target) else {
        return Err(Reply::new(400, "Bad Request", "malformed request"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let format =
        match path {
            "/debug/pprof/profile" => Format::Pprof,
            "/debug/pprof/flamegraph" => Format::Flamegraph,
            _ => return Err(Reply::new(
                404,
                "Not Found",
                "not found: the profiler serves /debug/pprof/profile and /debug/pprof/flamegraph",
            )),
        };
    if method != "GET" {
        return Err(Reply::new(405, "Method Not Allowed", "use GET"));
    }
    Ok(ProfileRequest {
        format,
        seconds: seconds(query)?,
    })
}

/// The `seconds` query parameter: decimal 1..=MAX_SECONDS, once; absent = the default.
fn seconds(query: &str) -> Result<u64, Reply> {
    let bad = |why: &str| Reply::new(400, "Bad Request", format!("seconds: {why}"));
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "seconds" {
            continue;
        }
        if found.is_some() {
            return Err(bad("given more than once"));
        }
        found = Some(value);
    }
    let Some(value) = found else {
        return Ok(DEFAULT_SECONDS);
    };
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let n = digits.then(|| value.parse::<u64>().ok()).flatten();
    match n {
        Some(n) if (1..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(bad(&format!(
            "must be a whole number from 1 to {MAX_SECONDS}, got {value:?}"
        ))),
    }
}

fn send_reply(stream: &mut TcpStream, reply: &Reply) {
    let body = format!("{}\n", reply.message);
    let allow = if reply.status == 405 {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         {allow}Connection: close\r\n\r\n{body}",
        reply.status,
        reply.reason,
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &str) -> Result<ProfileRequest, u16> {
        parse(head.as_bytes()).map_err(|r| r.status)
    }

    #[test]
    fn routes_and_seconds() {
        assert_eq!(
            status("GET /debug/pprof/profile HTTP/1.1\r\n\r\n"),
            Ok(ProfileRequest {
                format: Format::Pprof,
                seconds: 30
            })
        );
        assert_eq!(
            status("GET /debug/pprof/flamegraph?x=1&seconds=300 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(ProfileRequest {
                format: Format::Flamegraph,
                seconds: 300
            })
        );
        assert_eq!(status("GET /debug/pprof/ HTTP/1.1\r\n\r\n"), Err(404));
        assert_eq!(status("GET /x?seconds=0 HTTP/1.1\r\n\r\n"), Err(404));
        assert_eq!(
            status("POST /debug/pprof/profile HTTP/1.1\r\n\r\n"),
            Err(405)
        );
        assert_eq!(status("GARBAGE\r\n\r\n"), Err(400));
    }

    #[test]
    fn bad_seconds_are_refused() {
        for q in [
            "seconds=0",
            "seconds=301",
            "seconds=",
            "seconds",
            "seconds=abc",
            "seconds=+5",
            "seconds=-1",
            "seconds=1.5",
            "seconds=99999999999999999999999",
            "seconds=1&seconds=2",
        ] {
            assert_eq!(seconds(q).map_err(|r| r.status), Err(400), "{q}");
        }
        assert_eq!(seconds("seconds=1").ok(), Some(1));
        assert_eq!(seconds("seconds=0007").ok(), Some(7));
        assert_eq!(seconds("").ok(), Some(DEFAULT_SECONDS));
        assert_eq!(seconds("debug=1").ok(), Some(DEFAULT_SECONDS));
    }
}
