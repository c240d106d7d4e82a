//! WebSocket tunnels as a client sees them (spec §13, issue 11): the real `dito` binary between
//! a tungstenite client and the test upstream of `support::ws_upstream`. Checked: text, binary
//! (1 MiB) and fragmented messages echo unchanged; pings are answered by the upstream; close
//! codes pass both ways and a client half-close propagates; bytes sent right behind the
//! upgrade head are relayed; upgrade tokens match case-insensitively; the path rules, query and
//! end-to-end headers reach the upstream; the 101 carries the upstream's handshake headers and
//! Dito's own; plugins refuse an upgrade, edit it, and add headers to the 101; `wss://` targets
//! with a custom CA, and without it a 502. Upgrades that do not become tunnels are in
//! `websocket_failures`; load, idle timeout, metrics and shutdown in `websocket_tunnels`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod websocket_common;

use std::io::{Read, Write};

use support::plugins::{PluginTree, HELLO, TEST};
use support::tls::Pki;
use websocket_common::*;

#[test]
fn text_and_binary_messages_echo_unchanged_including_one_mib() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut ws = connect(d.addr, "/ws/echo");
    round_trip(&mut ws, Message::text("hello through dito"));
    round_trip(&mut ws, Message::text("ünïcødé ✓"));
    round_trip(&mut ws, Message::binary(vec![0u8, 1, 2, 255, 254]));
    round_trip(&mut ws, Message::binary(Vec::new()));
    let big: Vec<u8> = (0..(1 << 20) + 7).map(|i| (i * 31 % 251) as u8).collect();
    round_trip(&mut ws, Message::binary(big));
    round_trip(&mut ws, Message::text("after the big one"));
    close(&mut ws, 1000);
    assert_eq!(up.upgrades(), 1);
}

#[test]
fn a_fragmented_message_reaches_the_upstream_whole() {
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::Frame;
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut ws = connect(d.addr, "/ws/echo");
    let parts = ["first part, ", "second part, ", "last part"];
    for (i, p) in parts.iter().enumerate() {
        let op = if i == 0 { Data::Text } else { Data::Continue };
        let fin = i == parts.len() - 1;
        ws.send(Message::Frame(Frame::message(
            p.to_string(),
            OpCode::Data(op),
            fin,
        )))
        .unwrap();
    }
    // The upstream echoes one message, so it reassembled all three frames.
    assert_eq!(next_text(&mut ws), parts.concat());
    let payload: Vec<u8> = (0..70_000).map(|i| (i % 256) as u8).collect();
    ws.send(Message::Frame(Frame::message(
        payload[..1000].to_vec(),
        OpCode::Data(Data::Binary),
        false,
    )))
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        payload[1000..].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert!(next(&mut ws) == Message::binary(payload));
    close(&mut ws, 1000);
}

#[test]
fn a_client_ping_is_answered_by_the_upstream() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut ws = connect(d.addr, "/ws/echo");
    ws.send(Message::Ping(b"are-you-there".to_vec().into()))
        .unwrap();
    let (mut pong, mut seen) = (false, false);
    for _ in 0..2 {
        match next(&mut ws) {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"are-you-there");
                pong = true;
            }
            Message::Text(t) => {
                assert_eq!(t.as_str(), "ping-seen:are-you-there");
                seen = true;
            }
            m => panic!("unexpected {m:?}"),
        }
    }
    assert!(pong && seen);
    round_trip(&mut ws, Message::text("still open"));
    close(&mut ws, 1000);
}

#[test]
fn close_codes_pass_both_ways() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    // The upstream closes with 4001 "bye" at once.
    let mut ws = connect(d.addr, "/ws/close4001");
    match next(&mut ws) {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4001);
            assert_eq!(f.reason.as_str(), "bye");
        }
        m => panic!("want Close(4001), got {m:?}"),
    }
    // tungstenite answered the close; the upstream then ends the connection.
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed)
    ));
    let closed = up.wait_closed(1, LIMIT);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].code, Some(4001), "the client's reply: {closed:?}");

    // The client closes with 1000; the upstream receives exactly that.
    let mut ws = connect(d.addr, "/ws/echo");
    round_trip(&mut ws, Message::text("x"));
    close(&mut ws, 1000);
    let closed = up.wait_closed(2, LIMIT);
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert_eq!(closed[1].target, "/echo");
    assert_eq!(closed[1].code, Some(1000), "{closed:?}");
    assert_eq!(closed[1].reason, "done");
}

#[test]
fn a_client_half_close_reaches_the_upstream_and_its_answer_still_arrives() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut ws = connect(d.addr, "/ws/echo");
    ws.send(Message::text("last words")).unwrap();
    // EOF from the client: Dito shuts the upstream's read side; the upstream still answers,
    // then ends, and its EOF comes back to the client.
    ws.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(next_text(&mut ws), "last words");
    match ws.read() {
        Err(tungstenite::Error::Protocol(_) | tungstenite::Error::ConnectionClosed) => {}
        other => panic!("want EOF after the echo, got {other:?}"),
    }
    let closed = up.wait_closed(1, LIMIT);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].code, None, "no close frame was sent: {closed:?}");
}

#[test]
fn bytes_sent_right_behind_the_upgrade_head_are_relayed() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    // The head and a masked text frame "early" in one write.
    let mut bytes = upgrade_request("/ws/echo", "").into_bytes();
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    bytes.extend([0x81, 0x80 | 5]);
    bytes.extend(mask);
    bytes.extend(b"early".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(&bytes).unwrap();
    let want: &[u8] = &[0x81, 5, b'e', b'a', b'r', b'l', b'y'];
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= i + 4 + want.len() {
                break i + 4;
            }
        }
        let n = s.read(&mut tmp).expect("read");
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(&got[end..], want, "{head}");
}

#[test]
fn path_rules_query_and_end_to_end_headers_reach_the_upstream() {
    let up = WsUpstream::start();
    let d = Dito::start(&yaml(
        "",
        &[ws_loc("^/chat", &format!("{}/base?tq=1", up.url()), "")],
    ));
    let (mut ws, resp) = connect_with(
        d.addr,
        "/chat/report/room?x=1&y=%20z",
        &[
            ("Cookie", "session=abc; theme=dark"),
            ("Authorization", "Bearer t0ken"),
            ("Origin", "https://app.example"),
            ("Sec-WebSocket-Protocol", "chat.v2, chat.v1"),
            ("X-Forwarded-For", "203.0.113.9"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("X-Custom", "kept"),
        ],
    );
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("chat.v2"),
        "{resp:?}"
    );
    let report: Value = serde_json::from_str(&next_text(&mut ws)).unwrap();
    assert_eq!(report["method"], "GET", "{report}");
    assert_eq!(report["version"], "HTTP/1.1", "{report}");
    assert_eq!(report["target"], "/base/report/room?tq=1&x=1&y=%20z");
    for (name, want) in [
        ("cookie", "session=abc; theme=dark"),
        ("authorization", "Bearer t0ken"),
        ("origin", "https://app.example"),
        ("sec-websocket-protocol", "chat.v2, chat.v1"),
        ("sec-websocket-version", "13"),
        (
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        ),
        ("x-custom", "kept"),
        ("x-forwarded-for", "203.0.113.9, 127.0.0.1"),
        ("x-forwarded-host", &d.addr.to_string()),
        ("x-forwarded-proto", "http"),
        ("host", &up.addr.to_string()),
    ] {
        assert_eq!(reported(&report, name), [want], "{name}: {report}");
    }
    assert_eq!(reported(&report, "sec-websocket-key").len(), 1, "{report}");
    assert_eq!(reported(&report, "x-request-id").len(), 1, "{report}");
    assert!(reported_token(&report, "connection", "upgrade"), "{report}");
    assert!(reported_token(&report, "upgrade", "websocket"), "{report}");
    round_trip(&mut ws, Message::text("then echo"));
    close(&mut ws, 1000);
}

#[test]
fn the_101_carries_the_upstream_handshake_and_dito_headers() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let (c, r) = raw_upgrade(
        d.addr,
        "/ws/report",
        "Sec-WebSocket-Protocol: proto-a\r\nX-Request-ID: ws-req-1\r\n",
    );
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.reason, "Switching Protocols", "{r:?}");
    // RFC 6455 §1.3 for the key of `upgrade_request`.
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{r:?}"
    );
    assert_eq!(r.header("sec-websocket-protocol"), Some("proto-a"), "{r:?}");
    assert_eq!(r.header("x-upstream"), Some("ws-test"), "{r:?}");
    assert!(
        r.header("connection")
            .unwrap()
            .eq_ignore_ascii_case("upgrade"),
        "{r:?}"
    );
    assert!(
        r.header("upgrade")
            .unwrap()
            .eq_ignore_ascii_case("websocket"),
        "{r:?}"
    );
    assert_eq!(r.header("x-request-id"), Some("ws-req-1"), "{r:?}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{r:?}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{r:?}");
    assert!(r.header("x-response-time").is_some(), "{r:?}");
    assert!(r.header("content-length").is_none(), "{r:?}");
    assert!(r.header("transfer-encoding").is_none(), "{r:?}");
    // The upstream got the same request id.
    let seen = up.seen();
    assert_eq!(reported(&seen[0], "x-request-id"), ["ws-req-1"]);
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
}

#[test]
fn an_answering_plugin_refuses_the_upgrade_before_the_upstream() {
    let up = WsUpstream::start();
    let tree = PluginTree::new();
    tree.add(
        "refuse",
        TEST,
        Some("answer:\n  status: 401\n  body: no tunnel for you\n"),
    );
    let loc = ws_loc("^/ws", &up.url(), "    middlewares: [refuse]\n");
    let d = Dito::start(&yaml(&tree.section(), &[loc]));
    let (mut c, r) = raw_upgrade(d.addr, "/ws/echo", "");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.body_str(), "no tunnel for you");
    assert!(r.header("upgrade").is_none(), "{r:?}");
    assert!(r.header("sec-websocket-accept").is_none(), "{r:?}");
    // The connection still speaks HTTP: the plugin answers the next request too.
    c.send(b"GET /ws/plain HTTP/1.1\r\nHost: test.local\r\n\r\n");
    assert_eq!(c.read_response().status, 401);
    assert_eq!(up.accepted(), 0, "the upstream saw a connection");
}

#[test]
fn plugin_hooks_edit_the_upgrade_request_and_the_101() {
    let up = WsUpstream::start();
    let tree = PluginTree::new();
    tree.add("hello-plugin", HELLO, None);
    tree.add(
        "edit",
        TEST,
        Some("tag: e\nset_request_header:\n  name: X-From-Plugin\n  value: edited\n"),
    );
    let loc = ws_loc("^/ws", &up.url(), "    middlewares: [hello-plugin, edit]\n");
    let d = Dito::start(&yaml(&tree.section(), &[loc]));
    let (mut ws, resp) = connect_with(d.addr, "/ws/report", &[]);
    let header = |n: &str| resp.headers().get(n).map(|v| v.to_str().unwrap());
    assert_eq!(header("x-chain-out"), Some("e"), "{resp:?}");
    // The request hooks edited the upgrade request the upstream got.
    let report: Value = serde_json::from_str(&next_text(&mut ws)).unwrap();
    assert_eq!(reported(&report, "x-from-plugin"), ["edited"], "{report}");
    assert_eq!(reported(&report, "x-chain"), ["e"], "{report}");
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("x-hello-plugin")
            .map(|v| v.to_str().unwrap()),
        Some("Hello from Dito plugin!"),
        "{resp:?}"
    );
    round_trip(&mut ws, Message::text("with a plugin"));
    close(&mut ws, 1000);
}

#[test]
fn wss_target_with_a_custom_ca_works_end_to_end() {
    let pki = Pki::new();
    let up = WsUpstream::start_tls(&pki);
    assert!(up.url().starts_with("wss://localhost:"));
    let tls = format!(
        "    transport:\n      http:\n        ca_file: '{}'\n",
        pki.ca.display()
    );
    let d = Dito::start(&yaml("", &[ws_loc("^/ws", &up.url(), &tls)]));
    let mut ws = connect(d.addr, "/ws/report");
    let report: Value = serde_json::from_str(&next_text(&mut ws)).unwrap();
    assert_eq!(report["target"], "/report");
    assert_eq!(
        reported(&report, "host"),
        [format!("localhost:{}", up.addr.port())]
    );
    round_trip(&mut ws, Message::text("over tls"));
    round_trip(&mut ws, Message::binary(vec![7u8; 200_000]));
    close(&mut ws, 1000);
    assert_first_close(&up, 1000);
}

#[test]
fn a_wss_target_without_the_ca_is_a_502_and_never_a_101() {
    let pki = Pki::new();
    let up = WsUpstream::start_tls(&pki);
    let d = Dito::start(&yaml("", &[ws_loc("^/ws", &up.url(), "")]));
    let (_c, r) = raw_upgrade(d.addr, "/ws/echo", "");
    assert_dito_error(&r, 502, "tls_unknown_ca");
    assert_eq!(up.upgrades(), 0);
}

#[test]
fn upgrade_tokens_are_case_insensitive_and_may_be_in_a_list() {
    let up = WsUpstream::start();
    let d = dito_to(&up, "");
    let mut c = Client::connect(d.addr);
    c.send(
        b"GET /ws/echo HTTP/1.1\r\nHost: test.local\r\nConnection: keep-alive, UPGRADE\r\n\
          Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let r = c.read_response();
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(up.upgrades(), 1);
}
