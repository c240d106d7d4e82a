//! Hardening tests: worker and process lifecycle (issue 17, spec §12).
//!
//! `panics`: a panic while serving one connection resets that connection only, and a panic
//! outside every connection task ends the process (fault injection, defect 0). `memlock`:
//! `io_driver: auto` falls back to epoll when the rings do not fit `RLIMIT_MEMLOCK` (defect
//! 11). `rolling`: during `shutdown_delay` keep-alive clients are told to leave and idle ones
//! are not cut (defect 12).

mod memlock;
mod panics;
mod rolling;

use std::time::Duration;

use crate::support::client::{request, Resp};
use crate::support::prom::{parse, Scrape};
use crate::support::Dito;

/// How long a process may take to react (exit, answer) in these tests.
const PROMPT: Duration = Duration::from_secs(5);

/// One scrape of `/metrics` on a new connection.
fn scrape(d: &Dito) -> Scrape {
    let resp: Resp = request(
        d.addr,
        b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    parse(&resp.body_str()).unwrap_or_else(|e| panic!("{e}\n{}", resp.body_str()))
}
