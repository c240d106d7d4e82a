//! WebSocket tunnels over time (spec §13, §10, §12): a thousand concurrent tunnels echo with no
//! loss or reordering and all close cleanly; `websocket_idle_timeout` closes a silent tunnel
//! but not a busy one; the WebSocket metrics follow a tunnel's life; SIGTERM keeps a tunnel up
//! until `shutdown_timeout`, then Dito exits 0; the access line is written at the 101. The
//! upstream is `support::ws_upstream`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod websocket_common;

use std::sync::{Arc, Barrier};

use support::client::get;
use support::prom::{parse, Scrape};
use websocket_common::*;

/// Tunnels in the load test.
const TUNNELS: usize = 1000;
/// Client threads sharing them.
const CLIENT_THREADS: usize = 4;
/// How long every tunnel keeps echoing.
const ECHO_FOR: Duration = Duration::from_millis(2500);

/// Raises this process's open-file limit to the hard limit (Dito inherits it).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur >= 3 * TUNNELS as u64 + 500,
        "open-file hard limit {} is too low for {TUNNELS} tunnels",
        lim.rlim_cur
    );
}

#[test]
fn a_thousand_concurrent_tunnels_echo_without_loss_or_reordering() {
    raise_fd_limit();
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let addr = d.addr;
    let per = TUNNELS / CLIENT_THREADS;
    let opened = Arc::new(Barrier::new(CLIENT_THREADS + 1));
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let opened = opened.clone();
            std::thread::spawn(move || {
                let mut tunnels: Vec<Ws> = (0..per).map(|_| connect(addr, "/ws/echo")).collect();
                opened.wait();
                // Rounds: two messages on every tunnel, then both echoes read back in order.
                let began = Instant::now();
                let mut rounds = 0u32;
                while began.elapsed() < ECHO_FOR {
                    for (i, ws) in tunnels.iter_mut().enumerate() {
                        for k in 0..2 {
                            ws.send(Message::text(format!("t{t}-c{i}-r{rounds}-{k}")))
                                .unwrap_or_else(|e| panic!("send t{t} c{i}: {e}"));
                        }
                    }
                    for (i, ws) in tunnels.iter_mut().enumerate() {
                        for k in 0..2 {
                            let want = format!("t{t}-c{i}-r{rounds}-{k}");
                            match ws.read() {
                                Ok(Message::Text(got)) if got.as_str() == want => {}
                                other => panic!("tunnel t{t} c{i}: want {want:?}, got {other:?}"),
                            }
                        }
                    }
                    rounds += 1;
                }
                for ws in &mut tunnels {
                    close(ws, 1000);
                }
                rounds
            })
        })
        .collect();
    opened.wait();
    let all_open = start.elapsed();
    assert_eq!(up.upgrades(), TUNNELS, "tunnels open at once");
    let rounds: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        rounds.iter().all(|&r| r >= 3),
        "too few rounds per tunnel: {rounds:?}"
    );
    let closed = up.wait_closed(TUNNELS, LIMIT);
    assert_eq!(closed.len(), TUNNELS);
    assert!(
        closed.iter().all(|c| c.code == Some(1000)),
        "{:?}",
        closed.iter().find(|c| c.code != Some(1000))
    );
    eprintln!(
        "{TUNNELS} tunnels open after {all_open:?}, rounds per thread {rounds:?}, total {:?}",
        start.elapsed()
    );
}

#[test]
fn idle_timeout_closes_a_silent_tunnel_but_not_a_busy_one() {
    let up = WsUpstream::start();
    let d = Dito::start(&yaml(
        "metrics:\n  enabled: true\n",
        &[ws_loc(
            "^/ws",
            &up.url(),
            "    websocket_idle_timeout: 1s\n",
        )],
    ));
    let mut silent = connect(d.addr, "/ws/echo");
    let mut busy = connect(d.addr, "/ws/echo");
    round_trip(&mut silent, Message::text("one and done"));
    let quiet_since = Instant::now();
    let silent = std::thread::spawn(move || {
        let r = silent.read();
        (
            r.map(|m| format!("{m:?}")).map_err(|e| e.to_string()),
            quiet_since.elapsed(),
        )
    });
    let began = Instant::now();
    let mut n = 0;
    while began.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(300));
        round_trip(&mut busy, Message::text(format!("keep-alive {n}")));
        n += 1;
    }
    let (read, after) = silent.join().unwrap();
    // Closed without a close frame: an error, not a timeout of our own 10 s read.
    assert!(read.is_err(), "silent tunnel got {read:?}");
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_secs(5),
        "silent tunnel closed after {after:?}: {read:?}"
    );
    close(&mut busy, 1000);
    let closed = up.wait_closed(2, LIMIT);
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert_eq!(
        closed[0].code, None,
        "idle close sends no frame: {closed:?}"
    );
    assert_eq!(closed[1].code, Some(1000), "{closed:?}");
    let s = scrape_until(d.addr, "the idle close counted", |s| {
        s.sum(
            "dito_websocket_connections_closed_total",
            &[("reason", "idle")],
        ) >= 1.0
    });
    assert_eq!(
        s.sum(
            "dito_websocket_connections_closed_total",
            &[("reason", "idle")]
        ),
        1.0
    );
}

fn scrape(addr: SocketAddr) -> Scrape {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    parse(&r.body_str()).unwrap_or_else(|e| panic!("{e}"))
}

/// Scrapes until `ok` holds (at most [`LIMIT`]); panics naming `what` otherwise.
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    poll(LIMIT, || {
        let s = scrape(addr);
        let done = ok(&s);
        last = Some(s.clone());
        done.then_some(s)
    })
    .unwrap_or_else(|| panic!("{what}: never seen; last scrape {last:?}"))
}

#[test]
fn metrics_follow_a_tunnel_from_101_to_close() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "metrics:\n  enabled: true\n");
    let active = |s: &Scrape| s.sum("dito_websocket_connections_active", &[]);
    let bytes = |s: &Scrape, dir: &str| s.sum("dito_websocket_bytes_total", &[("direction", dir)]);
    let mut ws = connect(d.addr, "/ws/echo");
    let s = scrape_until(d.addr, "one active tunnel", |s| active(s) == 1.0);
    assert_eq!(s.sum("dito_websocket_connections_total", &[]), 1.0);
    assert_eq!(s.kind("dito_websocket_connections_active"), Some("gauge"));
    assert_eq!(s.kind("dito_websocket_connections_total"), Some("counter"));
    assert_eq!(
        s.sum("http_requests_total", &[("status_code", "101")]),
        1.0,
        "the upgrade is counted at the 101"
    );

    // A 5000-byte binary message: 5008 bytes masked from the client, 5004 back.
    round_trip(&mut ws, Message::binary(vec![42u8; 5000]));
    let s = scrape_until(d.addr, "the bytes counted while the tunnel is open", |s| {
        bytes(s, "client_to_upstream") >= 5008.0 && bytes(s, "upstream_to_client") >= 5004.0
    });
    assert_eq!(active(&s), 1.0);

    close(&mut ws, 1000);
    // The upstream's half is closed; the tunnel ends when the client closes its socket too.
    drop(ws);
    let s = scrape_until(d.addr, "no active tunnel after the close", |s| {
        active(s) == 0.0
            && s.sum(
                "dito_websocket_connections_closed_total",
                &[("reason", "closed")],
            ) == 1.0
    });
    assert_eq!(s.sum("dito_websocket_connections_total", &[]), 1.0);
    assert_eq!(s.sum("dito_websocket_connections_closed_total", &[]), 1.0);
    assert_eq!(s.sum("http_requests_total", &[("status_code", "101")]), 1.0);
}

#[test]
fn sigterm_keeps_a_tunnel_until_shutdown_timeout_then_exits_0() {
    let up = WsUpstream::start();
    let mut d = dito_to(&up, "shutdown_delay: 0s\nshutdown_timeout: 1s\n");
    let mut ws = connect(d.addr, "/ws/echo");
    round_trip(&mut ws, Message::text("before"));
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    let mut last_ok = None;
    let mut n = 0;
    let ended = loop {
        assert!(
            signalled.elapsed() < LIMIT,
            "tunnel still open {LIMIT:?} after SIGTERM"
        );
        let m = format!("during drain {n}");
        n += 1;
        let ok = ws.send(Message::text(m.clone())).is_ok()
            && matches!(ws.read(), Ok(Message::Text(t)) if t.as_str() == m);
        if !ok {
            break signalled.elapsed();
        }
        last_ok = Some(signalled.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    };
    let last_ok = last_ok.expect("no echo at all after SIGTERM");
    assert!(
        last_ok >= Duration::from_millis(600),
        "last echo {last_ok:?} after SIGTERM; ended at {ended:?}"
    );
    assert!(
        ended >= Duration::from_millis(800) && ended <= Duration::from_secs(4),
        "tunnel ended {ended:?} after SIGTERM (shutdown_timeout 1s)"
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)),
        Some(0),
        "exit status; output:\n{}",
        d.output()
    );
}

#[test]
fn the_access_line_is_written_at_the_101_while_the_tunnel_is_open() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "logging:\n  format: json\n");
    let mut ws = connect(d.addr, "/ws/echo?room=1");
    let line = poll(LIMIT, || {
        d.output()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "HTTP request processed")
    })
    .unwrap_or_else(|| panic!("no access line while the tunnel is open:\n{}", d.output()));
    assert_eq!(line["status_code"], 101, "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["url"], "/ws/echo?room=1", "{line}");
    round_trip(
        &mut ws,
        Message::text("the tunnel outlives its access line"),
    );
    close(&mut ws, 1000);
    drop(ws);
    assert_eq!(
        d.count_output("HTTP request processed"),
        1,
        "{}",
        d.output()
    );
}
