//! Item 8: request header names containing `_` are dropped by default (a backend folding `_`
//! into `-` would otherwise read `X_Forwarded_For` as a spoofed `X-Forwarded-For`), kept with
//! `request_limits.headers_with_underscores: allow`, refused with 400 with `reject` — over
//! HTTP/1.1, HTTP/2 and WebSocket upgrades, applied by a reload, checked by `dito check`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::upgrade_head;
use crate::proxy_common::{echoed, loc, through_echo, yaml, Echoed};
use crate::support::client::{get, request, Client, Resp};
use crate::support::upstream::{ok, Upstream};
use crate::support::ws_upstream::WsUpstream;
use crate::support::{h2client, run_dito, write_file, Dito};

const WAIT: Duration = Duration::from_secs(10);
const ALLOW: &str = "request_limits:\n  headers_with_underscores: allow\n";
const REJECT: &str = "request_limits:\n  headers_with_underscores: reject\n";

/// A GET of echo's `/echo` with spoofing fields spelled with `_` beside ordinary ones.
const SPOOFING: &[u8] = b"GET /echo HTTP/1.1\r\nHost: t\r\nX_Forwarded_For: 6.6.6.6\r\n\
    Content_Length: 5\r\nX-Normal: n_1\r\nX_Custom: v\r\n\r\n";

fn underscored(e: &Echoed) -> Vec<String> {
    e.headers
        .iter()
        .filter(|(n, _)| n.contains('_'))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

fn assert_bad_request(r: &Resp) {
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.header("x-echo-conn").is_none(), "relayed: {r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(
        r.body_str()
            .starts_with(r#"{"error":{"code":400,"message":"Bad Request"}"#),
        "{}",
        r.body_str()
    );
}

#[test]
fn underscored_names_are_dropped_by_default() {
    let (_echo, d) = through_echo("");
    let e = echoed(&request(d.addr, SPOOFING));
    assert!(underscored(&e).is_empty(), "{:?}", e.headers);
    assert_eq!(e.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(e.one("x-normal"), "n_1");
    assert_eq!(e.body_length, 0);
}

#[test]
fn underscored_names_are_forwarded_with_allow() {
    let (_echo, d) = through_echo(ALLOW);
    let e = echoed(&request(d.addr, SPOOFING));
    assert_eq!(
        underscored(&e),
        [
            "X_Forwarded_For: 6.6.6.6",
            "Content_Length: 5",
            "X_Custom: v"
        ]
    );
    // Kept, they are still not the fields they imitate.
    assert_eq!(e.one("x-forwarded-for"), "127.0.0.1");
    assert_eq!(e.body_length, 0);
}

#[test]
fn underscored_names_are_refused_with_reject_before_any_upstream_call() {
    let up = Upstream::start(|_| ok("fine"));
    let d = Dito::start(&yaml(
        REJECT,
        &[loc("^/", &format!("http://{}", up.addr), "")],
    ));
    let mut c = Client::connect(d.addr);
    c.send(b"GET /refused HTTP/1.1\r\nHost: t\r\nX_Custom: v\r\n\r\n");
    assert_bad_request(&c.read_response());
    // The next request is the first the upstream sees.
    assert_eq!(get(d.addr, "/after").status, 200);
    let seen = up.next_request(WAIT).expect("the upstream saw /after");
    assert_eq!(seen.target(), "/after");
}

/// `GET /echo` over HTTP/2 (h2c) with the field `x_custom`; the reply.
fn h2_get_with_underscore(d: &Dito) -> h2client::Reply {
    h2client::run(async {
        let (client, _conn) = h2client::connect(d.addr).await;
        let mut c = client.ready().await.unwrap();
        let req = h2client::req("GET", "/echo")
            .header("x_custom", "v")
            .header("x-normal", "n")
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        h2client::read_reply(resp).await.unwrap()
    })
}

#[test]
fn http2_requests_follow_the_same_policy() {
    let (_echo, d) = through_echo("");
    let r = h2_get_with_underscore(&d);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("x_custom"), "{text}");
    assert!(text.contains("header: x-normal: n"), "{text}");

    let (_echo, d) = through_echo(ALLOW);
    let text = h2_get_with_underscore(&d).text();
    assert!(text.contains("header: x_custom: v"), "{text}");

    let (_echo, d) = through_echo(REJECT);
    let r = h2_get_with_underscore(&d);
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Sends a WebSocket upgrade with `X_Forwarded_For` and returns the response head.
fn upgrade_with_underscore(d: &Dito) -> String {
    upgrade_head(d.addr, "/ws/chat", "X_Forwarded_For: 6.6.6.6\r\n")
}

#[test]
fn websocket_upgrades_follow_the_same_policy() {
    let ws_loc = |ws: &WsUpstream| loc("^/ws", &ws.url(), "    enable_websocket: true\n");
    let names = |report: &Value| -> Vec<String> {
        report["headers"]
            .as_array()
            .expect("report headers")
            .iter()
            .filter_map(|h| h[0].as_str().map(str::to_ascii_lowercase))
            .collect()
    };

    let ws = WsUpstream::start();
    let d = Dito::start(&yaml("", &[ws_loc(&ws)]));
    let head = upgrade_with_underscore(&d);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let seen = ws.seen();
    assert!(
        !names(&seen[0]).contains(&"x_forwarded_for".to_owned()),
        "{}",
        seen[0]
    );

    let ws = WsUpstream::start();
    let d = Dito::start(&yaml(ALLOW, &[ws_loc(&ws)]));
    assert!(upgrade_with_underscore(&d).starts_with("HTTP/1.1 101 "));
    assert!(names(&ws.seen()[0]).contains(&"x_forwarded_for".to_owned()));

    let ws = WsUpstream::start();
    let d = Dito::start(&yaml(REJECT, &[ws_loc(&ws)]));
    let head = upgrade_with_underscore(&d);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert_eq!(ws.accepted(), 0, "the upgrade reached the upstream");
}

#[test]
fn a_reload_applies_the_policy() {
    let (_echo, d) = through_echo("");
    assert!(underscored(&echoed(&request(d.addr, SPOOFING))).is_empty());
    let cfg = d.dir.join("config.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let with = |policy: &str| text.replace("locations:\n", &format!("{policy}locations:\n"));

    std::fs::write(&cfg, with(REJECT)).unwrap();
    d.signal(libc::SIGHUP);
    assert!(d.wait_for_output("config reloaded", WAIT), "{}", d.output());
    assert_bad_request(&request(d.addr, SPOOFING));

    std::fs::write(&cfg, with(ALLOW)).unwrap();
    d.signal(libc::SIGHUP);
    let start = Instant::now();
    while d.count_output("config reloaded") < 2 {
        assert!(start.elapsed() < WAIT, "no second reload: {}", d.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(underscored(&echoed(&request(d.addr, SPOOFING))).len(), 3);
}

#[test]
fn dito_check_names_an_unknown_policy() {
    let dir = crate::support::temp_dir();
    let cfg = write_file(
        &dir,
        "config.yaml",
        "request_limits:\n  headers_with_underscores: ignore\n",
    );
    let out = run_dito(&["check", "-f", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "request_limits.headers_with_underscores: invalid value \"ignore\": expected drop, allow or reject"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
