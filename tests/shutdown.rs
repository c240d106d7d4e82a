//! Graceful shutdown as a client sees it (spec §12): SIGTERM lets running requests finish and
//! closes idle keep-alive connections, `shutdown_delay` keeps serving while `/readyz` says
//! 503, a second signal exits 1 at once, and SIGINT behaves like SIGTERM.
//!
//! Every wait is a bounded poll for the observable change; the only fixed waits are the ones
//! that check that something does *not* happen within a stated time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reload_common;
mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use reload_common::{
    dito_to, echo_yaml, poll, refused, slow_upstream, start_slow_request, status, target, SLOW,
};
use support::client::{get, Client, Ending};
use support::{Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Shutdown (spec §12)
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_lets_a_running_request_finish_then_exits_0() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let slow = start_slow_request(&d, &up);

    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    // Stops accepting at once (no shutdown_delay), while the slow request still runs.
    let refused_after = poll(Duration::from_secs(1), || refused(d.addr));
    assert!(
        refused_after.is_some(),
        "new connections still accepted 1 s after SIGTERM; output:\n{}",
        d.output()
    );
    assert!(
        matches!(slow.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the slow request ended before the listener closed"
    );
    assert!(d.is_running(), "exited before the running request finished");

    let (resp, ending, at) = slow
        .recv_timeout(Duration::from_secs(10))
        .expect("no answer to the slow request")
        .unwrap_or_else(|p| panic!("slow request failed: {p}; output:\n{}", d.output()));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body_str(), "slow\n");
    assert!(
        at.duration_since(signalled) >= SLOW - Duration::from_millis(500),
        "answered too early for a {SLOW:?} upstream"
    );
    assert_eq!(
        ending,
        Ending::Closed,
        "the busy connection after its response"
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)),
        Some(0),
        "exit status; output:\n{}",
        d.output()
    );
    assert!(refused(d.addr), "connections accepted after exit");
    assert_eq!(
        resp.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close"),
        "the last response of a draining connection says Connection: close: {resp:?}"
    );
}

#[test]
fn sigterm_closes_idle_keep_alive_connections() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let mut idle = Client::connect(d.addr);
    idle.send(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.read_response().status, 200);
    assert!(up.next_request(Duration::from_secs(5)).is_some());
    // A busy connection keeps the process alive meanwhile.
    let slow = start_slow_request(&d, &up);

    d.signal(libc::SIGTERM);
    assert_eq!(
        idle.ending(Duration::from_secs(1)),
        Ending::Closed,
        "the idle keep-alive connection was not closed within 1 s of SIGTERM"
    );
    assert!(
        matches!(slow.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the slow request ended before the idle connection closed"
    );
    let r = slow.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(r.0.status, 200);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn shutdown_delay_keeps_serving_while_readyz_says_503() {
    let e = Echo::start();
    let mut d = Dito::start(&echo_yaml(
        &e,
        "shutdown_delay: 2s\n",
        &[("^/p$", "/echo/p")],
    ));
    assert_eq!(get(d.addr, "/readyz").status, 200);

    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    assert!(
        poll(Duration::from_secs(1), || status(d.addr, "/readyz")
            == Some(503))
        .is_some(),
        "/readyz not 503 within 1 s of SIGTERM; output:\n{}",
        d.output()
    );
    let r = get(d.addr, "/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.body_str().starts_with(r#"{"error":{"code":503,"#),
        "{}",
        r.body_str()
    );
    assert_eq!(get(d.addr, "/healthz").status, 200);
    assert_eq!(
        target(d.addr, "/p").as_deref(),
        Some("/echo/p"),
        "proxying stops during shutdown_delay"
    );
    assert!(
        signalled.elapsed() < Duration::from_millis(1800),
        "checks ran past the delay; the test proves nothing"
    );

    let code = d.wait_exit(Duration::from_secs(6));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "exit status; output:\n{}", d.output());
    assert!(
        took >= Duration::from_millis(1900),
        "exited {took:?} after SIGTERM, before the 2 s shutdown_delay"
    );
}

#[test]
fn a_second_sigterm_during_the_delay_exits_1_at_once() {
    let e = Echo::start();
    let mut d = Dito::start(&echo_yaml(
        &e,
        "shutdown_delay: 5s\n",
        &[("^/p$", "/echo/p")],
    ));
    d.signal(libc::SIGTERM);
    // The first signal is being handled.
    assert!(
        poll(Duration::from_secs(1), || status(d.addr, "/readyz")
            == Some(503))
        .is_some(),
        "/readyz not 503 after SIGTERM; output:\n{}",
        d.output()
    );
    let second = Instant::now();
    d.signal(libc::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(1));
    assert_eq!(
        code,
        Some(1),
        "after {:?}; output:\n{}",
        second.elapsed(),
        d.output()
    );
}

#[test]
fn a_second_sigterm_while_draining_exits_1_at_once() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let slow = start_slow_request(&d, &up);
    d.signal(libc::SIGTERM);
    assert!(
        poll(Duration::from_secs(1), || refused(d.addr)).is_some(),
        "still accepting after SIGTERM"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(1)),
        Some(1),
        "output:\n{}",
        d.output()
    );
    assert!(
        matches!(
            slow.recv_timeout(Duration::from_secs(5)),
            Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected)
        ),
        "the slow request completed although the process exited at once"
    );
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let slow = start_slow_request(&d, &up);
    d.signal(libc::SIGINT);
    assert!(
        poll(Duration::from_secs(1), || refused(d.addr)).is_some(),
        "still accepting after SIGINT; output:\n{}",
        d.output()
    );
    let r = slow.recv_timeout(Duration::from_secs(10)).unwrap();
    let (resp, _, _) = r.unwrap_or_else(|p| panic!("slow request failed: {p}"));
    assert_eq!(resp.status, 200);
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)),
        Some(0),
        "output:\n{}",
        d.output()
    );
}
