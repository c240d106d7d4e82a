//! What a reload applies and what it refuses (spec §9): invalid configs keep the old one and
//! log every reason, a removed location answers 404, restart-only keys warn, port changes
//! (and a port that is held), the two-phase reload (a prepare failure in one worker, requests
//! finishing on the generation they started with), reload under load with zero failed
//! requests, and limits that change with the snapshot.
//!
//! Every wait is a bounded poll for the observable change; the only fixed waits are the ones
//! that check that something does *not* happen within a stated time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reload_common;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use reload_common::{
    cfg_path, echo_and_dito, echo_yaml, free_port, loc, poll, refused, slow_upstream,
    start_slow_request, status, target, write_atomic, yaml, Conn, RELOAD_LIMIT,
};
use support::{run_dito, Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Accepted and rejected configs (spec §9)
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_config_keeps_the_old_one_and_logs_every_reason() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let path = cfg_path(&d);
    let bad = yaml(
        top,
        &[
            loc("(", &format!("http://{}/echo/x", e.addr)),
            loc("^/b$", "ftp://example.com/"),
            loc("^/old$", "http://"),
        ],
    );
    std::fs::write(&path, &bad).unwrap();

    // The reasons, as `dito check` words them.
    let check = run_dito(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr).into_owned();
    let reasons: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(path.to_str().unwrap()))
        .collect();
    assert_eq!(reasons.len(), 3, "dito check said:\n{stderr}");

    for r in &reasons {
        assert!(
            d.wait_for_output(r, RELOAD_LIMIT),
            "the reload log lacks {r:?}; output:\n{}",
            d.output()
        );
    }
    assert_eq!(target(d.addr, "/old").as_deref(), Some("/echo/old"));
    assert_eq!(status(d.addr, "/b"), Some(404));

    // The watch keeps working after a rejection.
    let good = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(&path, good).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "a valid config after a rejected one was not applied; output:\n{}",
        d.output()
    );
}

#[test]
fn invalid_config_on_sighup_keeps_the_old_one() {
    let (e, d) = echo_and_dito("", &[("^/old$", "/echo/old")]);
    let path = cfg_path(&d);
    std::fs::write(&path, "port: [\n").unwrap();
    let check = run_dito(&["check", "-f", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr).into_owned();
    let reason = stderr
        .lines()
        .find(|l| l.starts_with(path.to_str().unwrap()))
        .unwrap_or_else(|| panic!("dito check said:\n{stderr}"))
        .to_owned();

    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output(&reason, RELOAD_LIMIT),
        "the reload log lacks {reason:?}; output:\n{}",
        d.output()
    );
    assert_eq!(target(d.addr, "/old").as_deref(), Some("/echo/old"));
    drop(e);
}

#[test]
fn a_removed_location_answers_404_afterwards() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/a$", "/echo/a"), ("^/b$", "/echo/b")]);
    assert_eq!(status(d.addr, "/b"), Some(200));
    std::fs::write(cfg_path(&d), echo_yaml(&e, top, &[("^/a$", "/echo/a")])).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/b") == Some(404)).is_some(),
        "/b still served after its removal; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/a"), Some(200));
}

#[test]
fn a_restart_only_key_change_warns_and_the_rest_applies() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")])
        .replace("workers: 2\n", "workers: 1\n");
    std::fs::write(cfg_path(&d), next).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "the reload with a changed `workers` was not applied; output:\n{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("WARN") && l.contains("workers")),
        "no WARN naming `workers`; output:\n{out}"
    );
}

#[test]
fn a_port_change_serves_the_new_port_and_closes_the_old() {
    let e = Echo::start();
    let routes = [("^/old$", "/echo/old")];
    let p1 = free_port();
    let first =
        echo_yaml(&e, "hot_reload: true\n", &routes).replace("port: 0\n", &format!("port: {p1}\n"));
    let d = Dito::start(&first);
    assert_eq!(d.addr.port(), p1);
    assert_eq!(status(d.addr, "/old"), Some(200));

    let p2 = free_port();
    let new_addr = SocketAddr::from(([127, 0, 0, 1], p2));
    let second = first.replace(&format!("port: {p1}\n"), &format!("port: {p2}\n"));
    std::fs::write(cfg_path(&d), second).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(new_addr, "/old") == Some(200)).is_some(),
        "the new port {p2} does not serve; output:\n{}",
        d.output()
    );
    assert!(
        poll(Duration::from_secs(2), || refused(d.addr)).is_some(),
        "the old port {p1} still accepts after the change; output:\n{}",
        d.output()
    );
    // Many new connections: every worker serves the new port.
    for i in 0..50 {
        assert_eq!(status(new_addr, "/old"), Some(200), "request {i}");
    }
}

#[test]
fn a_port_change_to_a_held_port_is_rejected_and_the_old_port_keeps_serving() {
    let e = Echo::start();
    let d = Dito::start(&echo_yaml(
        &e,
        "hot_reload: true\n",
        &[("^/old$", "/echo/old")],
    ));
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let p2 = held.local_addr().unwrap().port();
    let next = echo_yaml(
        &e,
        "hot_reload: true\n",
        &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")],
    )
    .replace("port: 0\n", &format!("port: {p2}\n"));
    std::fs::write(cfg_path(&d), next).unwrap();
    assert!(
        d.wait_for_output("rejected", RELOAD_LIMIT),
        "a reload onto a held port was not rejected; output:\n{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("rejected") && l.contains(&p2.to_string())),
        "the rejection does not name the port; output:\n{out}"
    );
    assert_eq!(status(d.addr, "/old"), Some(200));
    assert_eq!(
        status(d.addr, "/new"),
        Some(404),
        "part of a rejected reload applied"
    );
}

// ---------------------------------------------------------------------------------------------
// Two-phase reload
// ---------------------------------------------------------------------------------------------

#[test]
fn a_prepare_failure_in_one_worker_leaves_every_worker_on_the_old_generation() {
    let e = Echo::start();
    let routes = [("^/old$", "/echo/old")];
    let first = echo_yaml(&e, "", &routes);
    assert!(first.contains("workers: 2\n"));
    let d = Dito::try_start_with(&first, |cmd| {
        cmd.env("DITO_TEST_FAIL_PREPARE_WORKER", "1");
    })
    .unwrap_or_else(|f| panic!("dito did not start: {f:?}"));

    let next = echo_yaml(&e, "", &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("rejected", RELOAD_LIMIT),
        "no log line says the reload was rejected; output:\n{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("rejected") && l.contains("worker 1")),
        "the rejection does not name worker 1; output:\n{out}"
    );
    // Many new connections, so SO_REUSEPORT spreads them over both workers.
    for i in 0..200 {
        assert_eq!(status(d.addr, "/new"), Some(404), "request {i} to /new");
        assert_eq!(
            target(d.addr, "/old").as_deref(),
            Some("/echo/old"),
            "request {i} to /old"
        );
    }
}

#[test]
fn a_prepare_failure_with_a_port_change_binds_nothing() {
    let e = Echo::start();
    let first = echo_yaml(&e, "", &[("^/old$", "/echo/old")]);
    let d = Dito::try_start_with(&first, |cmd| {
        cmd.env("DITO_TEST_FAIL_PREPARE_WORKER", "1");
    })
    .unwrap_or_else(|f| panic!("dito did not start: {f:?}"));
    let p2 = free_port();
    let new_addr = SocketAddr::from(([127, 0, 0, 1], p2));
    std::fs::write(
        cfg_path(&d),
        first.replace("port: 0\n", &format!("port: {p2}\n")),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("rejected", RELOAD_LIMIT),
        "no log line says the reload was rejected; output:\n{}",
        d.output()
    );
    assert!(
        poll(Duration::from_secs(1), || refused(new_addr)).is_some(),
        "the new port {p2} of a rejected reload accepts connections; output:\n{}",
        d.output()
    );
    for i in 0..50 {
        assert_eq!(
            status(d.addr, "/old"),
            Some(200),
            "request {i} on the old port"
        );
    }
}

#[test]
fn a_running_request_finishes_on_the_generation_it_started_with() {
    let up = slow_upstream();
    let e = Echo::start();
    let u = format!("http://{}", up.addr);
    let first = yaml(
        "",
        &[
            loc("^/slow$", &format!("{u}/slow")),
            loc("^/p$", &format!("http://{}/echo/a", e.addr)),
        ],
    );
    let d = Dito::start(&first);
    let slow = start_slow_request(&d, &up);
    // The new generation has no /slow at all.
    std::fs::write(cfg_path(&d), echo_yaml(&e, "", &[("^/p$", "/echo/b")])).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/slow") == Some(404)).is_some(),
        "the reload was not applied; output:\n{}",
        d.output()
    );
    assert!(
        matches!(slow.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the slow request ended before the reload applied"
    );
    let (resp, _, _) = slow
        .recv_timeout(Duration::from_secs(10))
        .expect("no answer to the slow request")
        .unwrap_or_else(|p| panic!("slow request failed: {p}; output:\n{}", d.output()));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body_str(), "slow\n");
}

#[test]
fn a_keep_alive_connection_uses_the_new_config_for_its_next_request() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/p$", "/echo/a")]);
    let mut kept = Conn::connect(d.addr).unwrap();
    assert_eq!(kept.get("/p").unwrap().target(), Some("/echo/a"));
    std::fs::write(cfg_path(&d), echo_yaml(&e, top, &[("^/p$", "/echo/b")])).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || target(d.addr, "/p").as_deref()
            == Some("/echo/b"))
        .is_some(),
        "the reload was not applied; output:\n{}",
        d.output()
    );
    let r = kept.get("/p").expect("the kept connection");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.target(),
        Some("/echo/b"),
        "the kept connection stayed on the old config"
    );
}

// ---------------------------------------------------------------------------------------------
// Reload under load
// ---------------------------------------------------------------------------------------------

/// Keep-alive client threads.
const LOAD_CLIENTS: usize = 4;
/// Requests each keep-alive client sends at least, and at most.
const LOAD_MIN_PER_CLIENT: usize = 1250;
const LOAD_MAX_PER_CLIENT: usize = 1_000_000;
/// One more client opens a new connection per request (so a gap in accepting shows), at
/// least this many times.
const LOAD_MIN_FRESH: usize = 200;
/// Config rewrites during the load.
const LOAD_REWRITES: usize = 10;

#[test]
fn reload_under_load_fails_no_request() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/load$", "/echo/a")]);
    let a = echo_yaml(&e, top, &[("^/load$", "/echo/a")]);
    let b = echo_yaml(&e, top, &[("^/load$", "/echo/b")]);
    let addr = d.addr;

    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let non_200 = AtomicUsize::new(0);
    let conn_errors = AtomicUsize::new(0);
    let server_closes = AtomicUsize::new(0);
    let seen_a = AtomicUsize::new(0);
    let seen_b = AtomicUsize::new(0);
    let (problems_tx, problems) = mpsc::channel::<String>();
    let (started_tx, started) = mpsc::channel::<()>();

    thread::scope(|s| {
        // Clients 0..LOAD_CLIENTS keep their connection; the last one opens one per request.
        for c in 0..=LOAD_CLIENTS {
            let fresh = c == LOAD_CLIENTS;
            let min = if fresh {
                LOAD_MIN_FRESH
            } else {
                LOAD_MIN_PER_CLIENT
            };
            let problems_tx = problems_tx.clone();
            let started_tx = started_tx.clone();
            let (stop, sent, non_200, conn_errors, server_closes, seen_a, seen_b) = (
                &stop,
                &sent,
                &non_200,
                &conn_errors,
                &server_closes,
                &seen_a,
                &seen_b,
            );
            s.spawn(move || {
                let mut conn: Option<Conn> = None;
                for i in 0..LOAD_MAX_PER_CLIENT {
                    if i == 1 {
                        let _ = started_tx.send(());
                    }
                    if i >= min && stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if conn.is_none() {
                        match Conn::connect(addr) {
                            Ok(c) => conn = Some(c),
                            Err(err) => {
                                conn_errors.fetch_add(1, Ordering::Relaxed);
                                let _ = problems_tx.send(format!("client {c}: {err}"));
                                continue;
                            }
                        }
                    }
                    let Some(k) = conn.as_mut() else { continue };
                    sent.fetch_add(1, Ordering::Relaxed);
                    match k.get("/load") {
                        Ok(r) => {
                            if r.status != 200 {
                                non_200.fetch_add(1, Ordering::Relaxed);
                                let _ = problems_tx.send(format!(
                                    "client {c} request {i}: {} {}",
                                    r.status, r.body
                                ));
                            }
                            match r.target() {
                                Some("/echo/a") => seen_a.fetch_add(1, Ordering::Relaxed),
                                Some("/echo/b") => seen_b.fetch_add(1, Ordering::Relaxed),
                                _ => 0,
                            };
                            if r.close {
                                server_closes.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                            if fresh {
                                conn = None;
                            }
                        }
                        Err(err) => {
                            conn_errors.fetch_add(1, Ordering::Relaxed);
                            let _ = problems_tx.send(format!("client {c} request {i}: {err}"));
                            conn = None;
                        }
                    }
                }
            });
        }
        drop(problems_tx);
        drop(started_tx);

        // Every client is under way before the first rewrite.
        for _ in 0..=LOAD_CLIENTS {
            started
                .recv_timeout(Duration::from_secs(10))
                .expect("a load client did not start");
        }
        let path = cfg_path(&d);
        let mut rewrite_problem = None;
        for i in 0..LOAD_REWRITES {
            let (text, want) = if i % 2 == 0 {
                (&b, "/echo/b")
            } else {
                (&a, "/echo/a")
            };
            if i % 4 < 2 {
                std::fs::write(&path, text).unwrap();
            } else {
                write_atomic(&path, text);
            }
            // Each rewrite is applied before the next, so there are 10 generations.
            if poll(RELOAD_LIMIT, || {
                target(addr, "/load").as_deref() == Some(want)
            })
            .is_none()
            {
                rewrite_problem = Some(format!("rewrite {i} (to {want}) was not applied"));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(p) = rewrite_problem {
            panic!("{p}; output:\n{}", d.output());
        }
    });

    let problems: Vec<String> = problems.try_iter().take(20).collect();
    let (sent, non_200, conn_errors) = (
        sent.into_inner(),
        non_200.into_inner(),
        conn_errors.into_inner(),
    );
    let (seen_a, seen_b) = (seen_a.into_inner(), seen_b.into_inner());
    let summary = format!(
        "{sent} requests, {non_200} not 200, {conn_errors} connection errors, \
         {} server closes, {seen_a} to /echo/a, {seen_b} to /echo/b; first problems: {problems:#?}",
        server_closes.into_inner()
    );
    assert!(
        sent >= LOAD_CLIENTS * LOAD_MIN_PER_CLIENT + LOAD_MIN_FRESH,
        "{summary}"
    );
    assert_eq!(non_200, 0, "{summary}");
    assert_eq!(conn_errors, 0, "{summary}");
    // The load crossed generations: both configs answered some of it.
    assert!(seen_a > 0 && seen_b > 0, "{summary}");
    assert_eq!(seen_a + seen_b, sent, "{summary}");
    assert!(
        !d.output().contains("rejected"),
        "a rewrite was rejected; output:\n{}",
        d.output()
    );
    eprintln!("reload under load: {summary}");
}

// ---------------------------------------------------------------------------------------------
// Limits live in the snapshot (issue 5: "all of these limits reload with the config")
// ---------------------------------------------------------------------------------------------

#[test]
fn body_limits_change_with_a_reload() {
    let wide = "response_limits:\n  max_response_body_size: 1000\n";
    let narrow = "response_limits:\n  max_response_body_size: 10\nrequest_limits:\n  max_request_body_size: 5\n";
    let (e, d) = echo_and_dito(wide, &[("^/b", "/bytes")]);
    assert_eq!(status(d.addr, "/b/100"), Some(200));
    std::fs::write(cfg_path(&d), echo_yaml(&e, narrow, &[("^/b", "/bytes")])).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/b/100") == Some(413)).is_some(),
        "the narrower response limit did not apply; output:\n{}",
        d.output()
    );
    let r = support::client::request(
        d.addr,
        b"POST /b/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabcdef",
    );
    assert_eq!(r.status, 413, "the narrower request limit did not apply");
    assert!(r.body_str().contains("Request body too large"));
}
