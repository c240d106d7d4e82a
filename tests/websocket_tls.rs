//! WebSocket through Dito's TLS listener (a `wss://` client, issue 11): the upgrade gets its
//! 101 with HSTS, the upstream sees `X-Forwarded-Proto: https`, and the tunnel — which runs
//! on the connection after the TLS session's HTTP state is handed over — carries messages,
//! a large one, pings and close codes both ways; also with TLS on both legs (a `wss://`
//! upstream). Clients are tungstenite over rustls over a std `TcpStream`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod websocket_common;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use support::tls::{provider, Pki};
use websocket_common::*;

type TlsWs = WebSocket<StreamOwned<ClientConnection, TcpStream>>;

/// The top-level `tls` block with the test server certificate.
fn tls_listener(pki: &Pki) -> String {
    format!(
        "tls:\n  cert_file: '{}'\n  key_file: '{}'\n",
        pki.server.cert.display(),
        pki.server.key.display()
    )
}

/// A WebSocket to `wss://localhost:PORT{path}` through Dito's TLS listener.
fn connect_tls(
    addr: SocketAddr,
    path: &str,
    pki: &Pki,
) -> (TlsWs, tungstenite::handshake::client::Response) {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).expect("connect to dito");
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.set_write_timeout(Some(LIMIT)).unwrap();
    let stream = StreamOwned::new(conn, tcp);
    let req = format!("wss://localhost:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    match tungstenite::client::client_with_config(req, stream, Some(ws_config())) {
        Ok(pair) => pair,
        Err(e) => panic!("handshake over TLS failed: {e}"),
    }
}

fn read_tls(ws: &mut TlsWs) -> Message {
    ws.read().unwrap_or_else(|e| panic!("read: {e}"))
}

fn echo_tls(ws: &mut TlsWs, m: Message) {
    ws.send(m.clone()).unwrap();
    assert_eq!(read_tls(ws), m);
}

#[test]
fn a_wss_client_tunnels_through_the_tls_listener() {
    let pki = Pki::new();
    let up = WsUpstream::start();
    let d = Dito::start(&yaml(&tls_listener(&pki), &[ws_loc("^/ws", &up.url(), "")]));
    let (mut ws, resp) = connect_tls(d.addr, "/ws/report", &pki);
    assert_eq!(resp.status(), 101);
    assert!(
        resp.headers().contains_key("strict-transport-security"),
        "{resp:?}"
    );
    let report: Value = match read_tls(&mut ws) {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        m => panic!("want the report, got {m:?}"),
    };
    assert_eq!(reported(&report, "x-forwarded-proto"), ["https"]);
    echo_tls(&mut ws, Message::text("over the TLS listener"));
    echo_tls(&mut ws, Message::binary(vec![3u8; 300_000]));
    ws.send(Message::Ping(b"tls-ping".to_vec().into())).unwrap();
    let mut seen = (false, false);
    for _ in 0..4 {
        match read_tls(&mut ws) {
            Message::Pong(p) => seen.0 |= &p[..] == b"tls-ping",
            Message::Text(t) => seen.1 |= t.as_str() == "ping-seen:tls-ping",
            _ => {}
        }
        if seen == (true, true) {
            break;
        }
    }
    assert_eq!(seen, (true, true), "the upstream answers the ping");
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    // The upstream's close reply comes back; then the end of the stream.
    while ws.read().is_ok() {}
    assert_first_close(&up, 1000);
}

#[test]
fn tls_on_both_legs() {
    let pki = Pki::new();
    let up = WsUpstream::start_tls(&pki);
    let ca = format!(
        "    transport:\n      http:\n        ca_file: '{}'\n",
        pki.ca.display()
    );
    let d = Dito::start(&yaml(
        &tls_listener(&pki),
        &[ws_loc("^/ws", &up.url(), &ca)],
    ));
    let (mut ws, _) = connect_tls(d.addr, "/ws/close4001", &pki);
    match read_tls(&mut ws) {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4001);
            assert_eq!(f.reason.as_str(), "bye");
        }
        m => panic!("want the upstream's close 4001, got {m:?}"),
    }
    let (mut ws, _) = connect_tls(d.addr, "/ws/echo", &pki);
    for i in 0..20u32 {
        echo_tls(&mut ws, Message::text(format!("both legs {i}")));
    }
}
