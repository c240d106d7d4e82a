//! Unit tests for the upstream request head: spec §3's six steps in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::http::limits::HeadLimits;
use crate::http::request::parse_head;
use crate::route::{RouteSpec, Router};

const LIMITS: HeadLimits = HeadLimits {
    max_request_line_bytes: 8192,
    max_header_bytes: 65536,
    max_headers: 100,
    headers_with_underscores: crate::http::limits::HeadersWithUnderscores::Drop,
};

fn rules() -> HeaderRules {
    HeaderRules {
        host: b"up.internal:8080".to_vec(),
        excluded: vec!["cookie".into()],
        additional: vec![("X-Added".into(), "yes".into())],
        host_override: None,
    }
}

/// Builds the head for `raw` routed through `^/api` → `/base` (so `/api/x?q=1` goes to
/// `/base/x?q=1`).
fn build(raw: &[u8], rules: &HeaderRules) -> String {
    build_with(raw, rules, false)
}

fn build_with(raw: &[u8], rules: &HeaderRules, upgrade: bool) -> String {
    let (req, _) = parse_head(raw, &LIMITS).unwrap().unwrap();
    let router = Router::build(&[RouteSpec {
        pattern: "^/api".into(),
        target_path: "/base".into(),
        target_query: None,
        replace_path: false,
    }])
    .unwrap();
    let m = router.lookup(req.path()).unwrap();
    let mut out = Vec::new();
    write_request_head(
        &mut out,
        &req,
        &HeadInputs {
            route: router.get(m.index).unwrap(),
            route_match: &m,
            client_ip: "::ffff:10.1.2.3".parse().unwrap(),
            proto: "http",
            request_id: "rid",
            rules,
            upgrade,
        },
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn builds_in_spec_order() {
    let head = build(
        b"POST /api/x?q=1 HTTP/1.1\r\nHost: front.example\r\nConnection: keep-alive, X-Drop\r\n\
          X-Drop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\
          Cookie: c=1\r\nX-Added: old\r\nX-Keep: Case\r\nX-Request-ID: bad id\r\n\
          Transfer-Encoding: chunked\r\nTE: trailers, deflate\r\nX-Forwarded-Host: evil\r\n\r\n",
        &rules(),
    );
    assert_eq!(
        head,
        "POST /base/x?q=1 HTTP/1.1\r\n\
         Host: up.internal:8080\r\n\
         X-Keep: Case\r\n\
         TE: trailers\r\n\
         Connection: TE\r\n\
         X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.1.2.3\r\n\
         X-Forwarded-Host: front.example\r\n\
         X-Forwarded-Proto: http\r\n\
         X-Added: yes\r\n\
         X-Request-ID: rid\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
}

#[test]
fn connection_cannot_remove_dito_headers_and_host_override_wins() {
    let mut r = rules();
    r.host_override = Some("override.example".into());
    let head = build(
        b"GET /api/x?q=1 HTTP/1.1\r\nHost: h\r\nConnection: X-Forwarded-For, X-Request-ID\r\n\
          X-Forwarded-For: 9.9.9.9\r\nContent-Length: 3\r\n\r\n",
        &r,
    );
    assert!(head.starts_with("GET /base/x?q=1 HTTP/1.1\r\nHost: override.example\r\n"));
    assert!(head.contains("X-Forwarded-For: 10.1.2.3\r\n"), "{head}");
    assert!(head.contains("X-Request-ID: rid\r\n"));
    assert!(head.ends_with("Content-Length: 3\r\n\r\n"));
    assert!(!head.contains("9.9.9.9"));
}

#[test]
fn excluded_headers_apply_to_forwarded_fields_too() {
    let mut r = rules();
    r.excluded = vec!["x-forwarded-for".into(), "x-forwarded-proto".into()];
    let head = build(b"GET /api/x?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert!(!head.contains("X-Forwarded-For"));
    assert!(!head.contains("X-Forwarded-Proto"));
    assert!(head.contains("X-Forwarded-Host: h\r\n"));
}

#[test]
fn an_upgrade_gets_dito_s_own_connection_and_upgrade_fields() {
    let raw = b"GET /api/chat?room=1 HTTP/1.1\r\nHost: front\r\nConnection: Upgrade, X-Drop\r\n\
                X-Drop: 1\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Key: k==\r\n\
                Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\
                Authorization: Bearer t\r\nOrigin: https://front\r\n\r\n";
    let head = build_with(raw, &rules(), true);
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "GET /base/chat?room=1 HTTP/1.1");
    for want in [
        "Connection: upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Key: k==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: chat",
        "Authorization: Bearer t",
        "Origin: https://front",
    ] {
        assert_eq!(
            lines.iter().filter(|l| **l == want).count(),
            1,
            "{want}\n{head}"
        );
    }
    // The client's own hop-by-hop fields are gone, with what its Connection named.
    assert!(!head.contains("Upgrade: websocket, h2c"), "{head}");
    assert!(!head.contains("X-Drop"), "{head}");
    assert!(!head.contains("Connection: Upgrade"), "{head}");
    // Without the flag, the same request is a plain one.
    let plain = build(raw, &rules());
    assert!(!plain.to_ascii_lowercase().contains("upgrade"), "{plain}");
}

#[test]
fn te_trailers_is_named_in_one_connection_field_with_an_upgrade() {
    let raw = b"GET /api/chat HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\n\
                Upgrade: websocket\r\nTE: trailers\r\nSec-WebSocket-Key: k==\r\n\r\n";
    let head = build_with(raw, &rules(), true);
    let connection: Vec<&str> = head
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    assert_eq!(connection, ["Connection: upgrade, TE"], "{head}");
    assert!(head.contains("\r\nTE: trailers\r\n"), "{head}");
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    // No TE (or a TE without `trailers`): no `TE` token.
    let raw = b"GET /api/chat HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\n\
                Upgrade: websocket\r\nTE: gzip\r\n\r\n";
    let head = build_with(raw, &rules(), true);
    assert!(head.contains("\r\nConnection: upgrade\r\n"), "{head}");
    assert!(!head.contains("TE"), "{head}");
    let head = build(
        b"GET /api/x HTTP/1.1\r\nHost: h\r\nTE: gzip\r\n\r\n",
        &rules(),
    );
    assert!(!head.to_ascii_lowercase().contains("connection"), "{head}");
}
