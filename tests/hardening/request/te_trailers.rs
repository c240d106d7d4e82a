//! Item 5: a kept `TE: trailers` reaches an HTTP/1.1 upstream named in `Connection` (RFC 9110
//! §10.1.4), in one `Connection` field with a WebSocket upgrade's `upgrade` token; an HTTP/2
//! upstream gets `te: trailers` and no `Connection` (RFC 9113 §8.2.2).

use std::time::Duration;

use serde_json::Value;

use super::{scripted, upgrade_head};
use crate::proxy_common::{head_field, loc, yaml};
use crate::support::client::request;
use crate::support::h2_upstream::H2Upstream;
use crate::support::ws_upstream::WsUpstream;
use crate::support::Dito;

const WAIT: Duration = Duration::from_secs(10);

/// The `Connection` and `TE` fields the upstream received for a request with `te` lines.
fn upstream_hop_fields(te_lines: &str) -> (Vec<String>, Vec<String>) {
    let (up, d) = scripted("");
    let r = request(
        d.addr,
        format!("GET /te HTTP/1.1\r\nHost: t\r\n{te_lines}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.next_request(WAIT).expect("the upstream saw the request");
    let own = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
    (
        own(head_field(&seen.head, "connection")),
        own(head_field(&seen.head, "te")),
    )
}

#[test]
fn te_trailers_goes_to_an_http11_upstream_named_in_connection() {
    let (connection, te) = upstream_hop_fields("TE: trailers\r\n");
    assert_eq!(connection, ["TE"]);
    assert_eq!(te, ["trailers"]);
    // Only the `trailers` token survives, and it is still announced.
    let (connection, te) =
        upstream_hop_fields("TE: deflate, trailers\r\nConnection: keep-alive\r\n");
    assert_eq!(te, ["trailers"]);
    assert_eq!(connection, ["TE"]);
    // No `trailers`: no TE, and no Connection of Dito's.
    let (connection, te) = upstream_hop_fields("TE: gzip\r\n");
    assert!(
        te.is_empty() && connection.is_empty(),
        "{te:?} {connection:?}"
    );
}

#[test]
fn a_websocket_upgrade_with_te_trailers_names_both_tokens_in_one_connection_field() {
    let ws = WsUpstream::start();
    let d = Dito::start(&yaml(
        "",
        &[loc("^/ws", &ws.url(), "    enable_websocket: true\n")],
    ));
    let head = upgrade_head(d.addr, "/ws/chat", "TE: trailers\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let seen = ws.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let values = |name: &str| -> Vec<String> {
        seen[0]["headers"]
            .as_array()
            .expect("report headers")
            .iter()
            .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .filter_map(|h: &Value| h[1].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(values("connection"), ["upgrade, TE"], "{}", seen[0]);
    assert_eq!(values("upgrade"), ["websocket"], "{}", seen[0]);
    assert_eq!(values("te"), ["trailers"], "{}", seen[0]);
}

#[test]
fn te_trailers_goes_to_an_http2_upstream_without_connection() {
    let up = H2Upstream::plain();
    let d = Dito::start(&yaml(
        "",
        &[loc(
            "^/",
            &format!("http://{}", up.addr),
            "    transport:\n      http:\n        force_http2: true\n",
        )],
    ));
    let r = request(
        d.addr,
        b"GET /echo HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.body_str();
    assert!(body.lines().any(|l| l == "header: te: trailers"), "{body}");
    assert!(!body.contains("header: connection"), "{body}");
}
