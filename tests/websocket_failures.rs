//! Upgrade requests that do not become tunnels (spec §13): a dial failure is Dito's 502 and
//! never a 101; a non-101 answer is relayed and the client connection goes on speaking HTTP;
//! a 101 without `Upgrade: websocket` is a 502; a location without `enable_websocket`, an
//! `Upgrade: h2c` and an upgrade-looking request with a body are proxied as plain HTTP, with
//! `Upgrade` and `Connection` stripped; upgrades never use or feed the upstream pool; and
//! `enable_websocket` with `force_http2` is refused at load. The upstream is
//! `support::ws_upstream`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod websocket_common;

use support::client::get;
use support::plugins::{PluginTree, TEST};
use websocket_common::*;

#[test]
fn dial_failure_is_a_502_json_error_and_never_a_101() {
    let d = Dito::start(&yaml(
        "",
        &[ws_loc(
            "^/ws",
            &format!("ws://127.0.0.1:{}", dead_port()),
            "",
        )],
    ));
    let (mut c, r) = raw_upgrade(d.addr, "/ws/echo", "");
    assert_dito_error(&r, 502, "connect_refused");
    assert!(r.header("sec-websocket-accept").is_none(), "{r:?}");
    // Nothing else follows the error on that connection unasked.
    assert_ne!(c.ending(Duration::from_millis(200)), Ending::Reset);
}

#[test]
fn an_upstream_403_is_relayed_and_the_connection_stays_http() {
    let up = WsUpstream::start();
    let d = Dito::start(&yaml(
        "",
        &[
            ws_loc("^/ws", &up.url(), ""),
            plain_loc("^/plain", &format!("http://{}", up.addr), ""),
        ],
    ));
    let (mut c, r) = raw_upgrade(d.addr, "/ws/deny", "");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body_str(), "denied\n");
    assert!(r.header("upgrade").is_none(), "{r:?}");
    assert!(r.header("x-request-id").is_some(), "{r:?}");
    // The same client connection: a plain request, and another upgrade attempt.
    c.send(b"GET /plain/after HTTP/1.1\r\nHost: test.local\r\n\r\n");
    let r = c.read_response();
    assert_eq!(report_of(&r)["target"], "/after");
    c.send(upgrade_request("/ws/deny", "").as_bytes());
    assert_eq!(c.read_response().status, 403);
    assert_eq!(up.upgrades(), 0);
}

#[test]
fn a_response_hook_that_changes_the_101_refuses_the_switch() {
    let up = WsUpstream::start();
    let tree = PluginTree::new();
    tree.add("no-switch", TEST, Some("set_response_status: 403\n"));
    let d = Dito::start(&yaml(
        &tree.section(),
        &[
            ws_loc("^/ws", &up.url(), "    middlewares: [no-switch]\n"),
            plain_loc("^/plain", &format!("http://{}", up.addr), ""),
        ],
    ));
    let (mut c, r) = raw_upgrade(d.addr, "/ws/echo", "");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    assert!(r.header("upgrade").is_none(), "{r:?}");
    assert!(r.header("sec-websocket-accept").is_none(), "{r:?}");
    // The upstream had switched; its connection is closed without a tunnel.
    let closed = up.wait_closed(1, LIMIT);
    assert_eq!(closed.first().map(|c| c.code), Some(None), "{closed:?}");
    assert_eq!(up.upgrades(), 1);
    // The client connection still speaks HTTP.
    c.send(b"GET /plain/after HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(report_of(&c.read_response())["target"], "/after");
}

#[test]
fn a_101_without_upgrade_websocket_is_a_502() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let (_c, r) = raw_upgrade(d.addr, "/ws/bad101", "");
    assert_dito_error(&r, 502, "invalid_response");
    assert!(r.header("sec-websocket-accept").is_none(), "{r:?}");
    assert_eq!(up.upgrades(), 0);
}

#[test]
fn without_enable_websocket_an_upgrade_is_plain_http_without_upgrade_headers() {
    let up = WsUpstream::start();
    let d = Dito::start(&yaml("", &[plain_loc("^/ws", &up.url(), "")]));
    let (mut c, r) = raw_upgrade(d.addr, "/ws/echo", "Cookie: a=b\r\n");
    let report = report_of(&r);
    assert_eq!(report["target"], "/echo");
    assert!(reported(&report, "upgrade").is_empty(), "{report}");
    assert!(
        !reported_token(&report, "connection", "upgrade"),
        "{report}"
    );
    assert_eq!(reported(&report, "cookie"), ["a=b"], "{report}");
    assert!(r.header("upgrade").is_none(), "{r:?}");
    assert_eq!(up.upgrades(), 0);
    // Still HTTP keep-alive.
    c.send(b"GET /ws/next HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(report_of(&c.read_response())["target"], "/next");
}

#[test]
fn upgrade_h2c_on_a_websocket_location_is_plain_http() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut c = Client::connect(d.addr);
    c.send(
        b"GET /ws/h2c HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    let r = c.read_response();
    let report = report_of(&r);
    assert_eq!(report["target"], "/h2c");
    assert!(reported(&report, "upgrade").is_empty(), "{report}");
    assert!(reported(&report, "http2-settings").is_empty(), "{report}");
    assert!(
        !reported_token(&report, "connection", "upgrade"),
        "{report}"
    );
    assert_eq!(up.upgrades(), 0);
}

#[test]
fn an_upgrade_looking_request_with_a_body_is_plain_http() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut c = Client::connect(d.addr);
    c.send(upgrade_request("/ws/body", "Content-Length: 5\r\n").as_bytes());
    c.send(b"hello");
    let report = report_of(&c.read_response());
    assert_eq!(report["target"], "/body");
    assert!(reported(&report, "upgrade").is_empty(), "{report}");
    assert_eq!(reported(&report, "content-length"), ["5"], "{report}");
    assert_eq!(up.upgrades(), 0);
}

#[test]
fn a_post_with_upgrade_headers_is_not_tunnelled() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let (_c, r) = raw_upgrade(d.addr, "/ws/echo", "");
    assert_eq!(r.status, 101, "{r:?}");
    let mut c = Client::connect(d.addr);
    let req = upgrade_request("/ws/post", "Content-Length: 0\r\n").replacen("GET", "POST", 1);
    c.send(req.as_bytes());
    let report = report_of(&c.read_response());
    assert_eq!(report["method"], "POST");
    assert!(reported(&report, "upgrade").is_empty(), "{report}");
    assert_eq!(up.upgrades(), 1);
}

#[test]
fn upgrades_never_use_or_feed_the_upstream_pool() {
    let up = WsUpstream::start();
    // One worker, so every request shares one upstream pool.
    let cfg = yaml(
        "",
        &[
            ws_loc("^/ws", &up.url(), ""),
            plain_loc("^/plain", &format!("http://{}", up.addr), ""),
        ],
    );
    let d = Dito::start(&cfg.replace("workers: 2\n", "workers: 1\n"));
    let conn = |r: &Value| r["conn"].as_u64().unwrap();
    let first = conn(&report_of(&get(d.addr, "/plain/a")));
    // A pooled idle connection exists; the upgrade still dials its own.
    let (_c, r) = raw_upgrade(d.addr, "/ws/deny", "");
    assert_eq!(r.status, 403, "{r:?}");
    let denied = up.seen().iter().find(|s| s["target"] == "/deny").map(conn);
    assert!(denied.is_some_and(|c| c != first), "{:?}", up.seen());
    // The connection that answered the upgrade is not handed to plain requests afterwards.
    for path in ["/plain/b", "/plain/c"] {
        let c = conn(&report_of(&get(d.addr, path)));
        assert_ne!(Some(c), denied, "{path} went over the upgrade's connection");
    }
}

#[test]
fn enable_websocket_with_force_http2_is_a_config_error() {
    let loc = ws_loc(
        "^/ws",
        "ws://127.0.0.1:9",
        "    transport:\n      http:\n        force_http2: true\n",
    );
    let Err(f) = Dito::try_start(&yaml("", &[loc])) else {
        panic!("started with enable_websocket and force_http2");
    };
    assert_ne!(f.code, Some(0), "{f:?}");
    assert!(
        f.output.contains("enable_websocket") && f.output.contains("force_http2"),
        "{}",
        f.output
    );
}
