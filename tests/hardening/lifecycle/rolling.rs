//! Shutdown under a rolling update (spec §12, issue 17 defect 12): from SIGTERM on, during
//! `shutdown_delay`, each HTTP/1.1 response carries `Connection: close` and HTTP/2 connections
//! get GOAWAY, so keep-alive clients move to another replica by themselves; an idle keep-alive
//! connection stays open until the delay is over; and at the drain, a request that already
//! arrived on an idle connection is served, not cut off. `bench/rolling_update.py` runs the
//! whole scenario under load through a readiness-gated balancer.

use std::time::{Duration, Instant};

use super::PROMPT;
use crate::proxy_common::{loc, one_worker, yaml};
use crate::support::client::{get, Client, Ending};
use crate::support::h2client;
use crate::support::{Dito, Echo};

/// `shutdown_delay` of these tests: long enough that each check runs inside it.
const DELAY: Duration = Duration::from_secs(3);

fn dito_with_delay(e: &Echo, delay: Duration) -> Dito {
    Dito::start(&one_worker(yaml(
        &format!("shutdown_delay: {}ms\n", delay.as_millis()),
        &[loc("^/", &format!("http://{}", e.addr), "")],
    )))
}

/// Sends SIGTERM and waits until `/readyz` says 503 (the shutdown has begun); returns when
/// the signal was sent.
fn sigterm_and_wait_unready(d: &Dito) -> Instant {
    let sent = Instant::now();
    d.signal(libc::SIGTERM);
    while get(d.addr, "/readyz").status != 503 {
        assert!(sent.elapsed() < PROMPT, "/readyz not 503 after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    sent
}

fn says_close(r: &crate::support::client::Resp) -> bool {
    r.header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

#[test]
fn during_the_delay_a_keep_alive_client_is_answered_with_connection_close() {
    let e = Echo::start();
    let mut d = dito_with_delay(&e, DELAY);
    let mut c = Client::connect(d.addr);
    c.send(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(!says_close(&r), "{r:?}");

    let sent = sigterm_and_wait_unready(&d);
    c.send(b"GET /bytes/4 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcd"[..]));
    assert!(
        says_close(&r),
        "a response during shutdown_delay must say Connection: close: {r:?}"
    );
    assert_eq!(
        c.ending(PROMPT),
        Ending::Closed,
        "then the connection ends cleanly"
    );
    // A new connection during the delay is served the same way.
    let r = get(d.addr, "/bytes/2");
    assert!(r.status == 200 && says_close(&r), "{r:?}");
    assert!(
        sent.elapsed() < DELAY,
        "the checks ran past the delay: they prove nothing"
    );
    assert_eq!(d.wait_exit(DELAY + PROMPT), Some(0), "{}", d.output());
}

#[test]
fn during_the_delay_an_idle_keep_alive_connection_stays_open_until_the_delay_ends() {
    let e = Echo::start();
    let mut d = dito_with_delay(&e, DELAY);
    let mut c = Client::connect(d.addr);
    c.send(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response().status, 200);

    let sent = sigterm_and_wait_unready(&d);
    let open_for = DELAY
        .saturating_sub(sent.elapsed())
        .saturating_sub(Duration::from_millis(500));
    assert!(
        open_for >= Duration::from_secs(1),
        "too little of the delay is left to check anything ({open_for:?})"
    );
    assert_eq!(
        c.ending(open_for),
        Ending::Open,
        "an idle keep-alive connection was closed during shutdown_delay"
    );
    // After the delay the drain closes it (cleanly), and the process exits.
    assert_eq!(c.ending(PROMPT), Ending::Closed);
    assert!(sent.elapsed() >= DELAY - Duration::from_millis(100));
    assert_eq!(d.wait_exit(PROMPT), Some(0), "{}", d.output());
}

#[test]
fn during_the_delay_http2_connections_get_goaway_and_finish_their_streams() {
    let e = Echo::start();
    let d = dito_with_delay(&e, DELAY);
    let signalled = h2client::run(async {
        let (client, done) = h2client::connect(d.addr).await;
        assert_eq!(h2client::get(&client, "/bytes/3").await.status, 200);
        let signalled = Instant::now();
        // A slow stream in flight across SIGTERM; GOAWAY refuses new streams, the open one
        // gets its 200, and the connection ends cleanly — all inside the delay.
        h2client::check_goaway_on_sigterm((client, done), &d).await;
        signalled
    });
    assert!(
        signalled.elapsed() < DELAY,
        "GOAWAY came only after shutdown_delay ({:?})",
        signalled.elapsed()
    );
}

#[test]
fn at_the_drain_a_request_that_already_arrived_on_an_idle_connection_is_served() {
    const IDLE: usize = 12;
    let e = Echo::start();
    let mut d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", e.addr), "")],
    )));
    let mut idle: Vec<Client> = (0..IDLE)
        .map(|_| {
            let mut c = Client::connect(d.addr);
            c.send(b"GET /bytes/1 HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(c.read_response().status, 200);
            c
        })
        .collect();
    // The one worker stalls; meanwhile SIGTERM (no delay: the drain comes at once) and a
    // request on every idle connection. When the worker wakes, the drain and the requests
    // are there together: each request must be served, not answered with a close or reset.
    let mut staller = Client::connect(d.addr);
    staller.send(b"GET /bytes/1 HTTP/1.1\r\nHost: t\r\nX-Dito-Fault: stall\r\n\r\n");
    assert!(d.wait_for_output("injected fault: the worker thread stalls", PROMPT));
    d.signal(libc::SIGTERM);
    assert!(d.wait_for_output("shutting down", PROMPT), "{}", d.output());
    for c in &mut idle {
        c.send(b"GET /bytes/2 HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    for (i, c) in idle.iter_mut().enumerate() {
        let r = c.read_response();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"ab"[..]),
            "client {i}"
        );
        assert!(says_close(&r), "client {i}: {r:?}");
    }
    assert_eq!(staller.read_response().status, 200);
    assert_eq!(d.wait_exit(PROMPT), Some(0), "{}", d.output());
}
