//! Hardening tests: the upstream response side (issue 17). Reason phrases a worker once
//! panicked on (#0, `head`), framing fields on 204 and 1xx (#6, `head`), a malformed chunked
//! body (#3, `body`), trailer fields a trailer may not carry, both directions (#9,
//! `trailers`), and `transport.http.read_timeout` (#14, `read_timeout`).
//!
//! Shared here: a staged upstream that answers with timed writes (what a stalled or slow
//! origin does on the wire), configs, and polling of the access log and metrics (both are
//! written after the response, so a test waits for them, bounded).

mod body;
mod head;
mod read_timeout;
mod trailers;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy_common::{loc, yaml, NO_BUFFERING};
use crate::support::client::get;
use crate::support::prom::{self, Scrape};
use crate::support::Dito;

/// How long a staged upstream connection waits for the next request, and the most any
/// polling here waits.
const PATIENCE: Duration = Duration::from_secs(20);

/// One thing a staged upstream does while answering.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Vec<u8>),
    Pause(Duration),
}

pub fn send(bytes: &[u8]) -> Step {
    Step::Send(bytes.to_vec())
}

/// An upstream that answers each request with the steps its handler gives for the target,
/// then waits for the next request on the same connection (so after its last step a
/// connection stays open and silent until Dito closes it, or [`PATIENCE`]).
pub struct Staged {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Staged {
    pub fn start(handler: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static) -> Staged {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let flag = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || serve_staged(stream, &*handler));
            }
        });
        Staged { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve_staged(mut s: TcpStream, handler: &dyn Fn(&str) -> Vec<Step>) {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        // The tests send bodiless requests: a head is the whole request.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        for step in handler(&target) {
            match step {
                Step::Send(bytes) => {
                    if s.write_all(&bytes).is_err() {
                        return;
                    }
                }
                Step::Pause(d) => std::thread::sleep(d),
            }
        }
    }
}

/// One worker (every request on the same worker and pool), JSON access lines, metrics on, and
/// `extra` top-level keys; `^/raw/` streams unbuffered, everything else is held as usual.
pub fn dito_before(upstream: &str, extra: &str) -> Dito {
    let top = format!("logging:\n  format: json\nmetrics:\n  enabled: true\n{extra}");
    let cfg = yaml(
        &top,
        &[
            loc("^/raw/", upstream, NO_BUFFERING),
            loc("^/", upstream, ""),
        ],
    );
    Dito::start(&cfg.replace("workers: 2\n", "workers: 1\n"))
}

/// The access record of the request for `url`, once written (panics after [`PATIENCE`]).
pub fn access_record(d: &Dito, url: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = d.output().lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "HTTP request processed" && v["url"] == url).then_some(v)
        });
        if let Some(v) = found {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no access line for {url}:\n{}",
            d.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Scrapes until `ok` holds (panics naming `what` after [`PATIENCE`]).
pub fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = prom::parse(&get(addr, "/metrics").body_str()).unwrap();
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never reached: {what}: {s:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `dito_upstream_errors_total{kind}`.
pub fn upstream_errors(s: &Scrape, kind: &str) -> f64 {
    s.value("dito_upstream_errors_total", &[("kind", kind)])
        .unwrap_or(0.0)
}

/// Requests recorded with status 499 (a client that left).
pub fn client_closed(s: &Scrape) -> f64 {
    s.sum("http_requests_total", &[("status_code", "499")])
}
