//! Helpers shared by the WebSocket test files (`websocket`: the relay and what crosses it;
//! `websocket_failures`: upgrades that do not become tunnels; `websocket_tunnels`: many
//! tunnels, idle timeout, metrics, shutdown): config builders, a tungstenite client over a
//! plain `TcpStream`, raw upgrade requests, and readers of the upstream's JSON reports.
//!
//! A directory module so cargo does not build it as a test of its own; not every file uses
//! every helper, hence `dead_code` is allowed.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use std::net::{SocketAddr, TcpListener, TcpStream};
pub use std::time::{Duration, Instant};

pub use serde_json::Value;
pub use tungstenite::client::IntoClientRequest;
pub use tungstenite::protocol::frame::coding::CloseCode;
pub use tungstenite::protocol::frame::CloseFrame;
pub use tungstenite::protocol::WebSocketConfig;
pub use tungstenite::{Message, WebSocket};

pub use crate::support::client::{Client, Ending, Resp};
pub use crate::support::ws_upstream::{Closed, WsUpstream, MAX_MESSAGE};
pub use crate::support::{config, Dito};

/// Longest any single wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(10);

/// A WebSocket client: tungstenite over a blocking loopback socket.
pub type Ws = WebSocket<TcpStream>;

/// A `locations[]` item with `enable_websocket: true`; `extra` lines are indented by four.
pub fn ws_loc(path: &str, target: &str, extra: &str) -> String {
    format!("  - path: '{path}'\n    target_url: '{target}'\n    enable_websocket: true\n{extra}")
}

/// A `locations[]` item without WebSocket.
pub fn plain_loc(path: &str, target: &str, extra: &str) -> String {
    format!("  - path: '{path}'\n    target_url: '{target}'\n{extra}")
}

/// A config with `top` (top-level keys) and the locations.
pub fn yaml(top: &str, locs: &[String]) -> String {
    config(&format!("{top}locations:\n{}", locs.concat()))
}

/// Dito with `^/ws` → `up` (prefix cut: `/ws/echo` → `/echo`) as a WebSocket location.
pub fn dito_to(up: &WsUpstream, top: &str) -> Dito {
    Dito::start(&yaml(top, &[ws_loc("^/ws", &up.url(), "")]))
}

pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Opens a WebSocket to `ws://addr{path}` with extra request headers; the socket and the 101.
pub fn connect_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Ws, tungstenite::handshake::client::Response) {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (n, v) in headers {
        req.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let tcp = TcpStream::connect(addr).expect("connect to dito");
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.set_write_timeout(Some(LIMIT)).unwrap();
    tcp.set_nodelay(true).unwrap();
    match tungstenite::client::client_with_config(req, tcp, Some(ws_config())) {
        Ok(pair) => pair,
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => panic!(
            "handshake refused: {} {:?} body {:?}",
            r.status(),
            r.headers(),
            r.body().as_deref().map(String::from_utf8_lossy)
        ),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// Opens a WebSocket to `ws://addr{path}`.
pub fn connect(addr: SocketAddr, path: &str) -> Ws {
    connect_with(addr, path, &[]).0
}

/// The next message (panics on an error or a timeout).
pub fn next(ws: &mut Ws) -> Message {
    ws.read().unwrap_or_else(|e| panic!("read: {e}"))
}

/// The next message, which must be text.
pub fn next_text(ws: &mut Ws) -> String {
    match next(ws) {
        Message::Text(t) => t.to_string(),
        m => panic!("want text, got {m:?}"),
    }
}

/// Sends `m` and expects it back unchanged.
pub fn round_trip(ws: &mut Ws, m: Message) {
    ws.send(m.clone()).expect("send");
    let got = next(ws);
    assert!(
        got == m,
        "echo differs: sent {} bytes, got {got:?}",
        m.len()
    );
}

/// Closes with `code` and reads until the close handshake is over (the upstream's reply).
pub fn close(ws: &mut Ws, code: u16) {
    ws.close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: "done".into(),
    }))
    .expect("send close");
    let deadline = Instant::now() + LIMIT;
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("while closing: {e}"),
        }
        assert!(Instant::now() < deadline, "close handshake never ended");
    }
}

/// A raw upgrade request for `path` (Host, the WebSocket headers, then `extra` lines).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// One raw upgrade request on a new connection: the client (still open) and the response.
pub fn raw_upgrade(addr: SocketAddr, path: &str, extra: &str) -> (Client, Resp) {
    let mut c = Client::connect(addr);
    c.send(upgrade_request(path, extra).as_bytes());
    let r = c.read_response();
    (c, r)
}

/// Every value of header `name` in an upstream report (case-insensitive name).
pub fn reported(report: &Value, name: &str) -> Vec<String> {
    report["headers"]
        .as_array()
        .expect("report headers")
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap().to_owned())
        .collect()
}

/// Whether header `name` of a report has the comma-separated token `token`.
pub fn reported_token(report: &Value, name: &str, token: &str) -> bool {
    reported(report, name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The JSON report in a plain 200 from the upstream.
pub fn report_of(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// Dito's own JSON error (spec §7) with `upstream_error` = `kind`, not a relayed answer.
pub fn assert_dito_error(r: &Resp, code: u16, kind: &str) {
    assert_eq!(r.status, code, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert!(r.header("upgrade").is_none(), "{r:?}");
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!(body["error"]["code"], code, "{r:?}");
    assert_eq!(body["error"]["details"]["upstream_error"], kind, "{r:?}");
    assert_eq!(
        body["request_id"].as_str(),
        r.header("x-request-id"),
        "{r:?}"
    );
}

/// A loopback port nothing listens on (bound a moment ago, then released).
pub fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 10 ms for up to `limit`; the first `Some`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The upstream's first ended tunnel got a close frame with `code`.
pub fn assert_first_close(up: &WsUpstream, code: u16) {
    let closed = up.wait_closed(1, LIMIT);
    assert_eq!(
        closed.first().and_then(|c| c.code),
        Some(code),
        "{closed:?}"
    );
}
