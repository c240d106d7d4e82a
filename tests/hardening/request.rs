//! Hardening tests: the client request side and its limits (issue 17).
//!
//! - `chunk_extensions`: whitespace before a chunk extension's `;` (item 4);
//! - `te_trailers`: `TE: trailers` named in `Connection` toward an HTTP/1.1 upstream, alone or
//!   with a WebSocket upgrade's `upgrade` token (item 5);
//! - `underscores`: header names with `_` dropped, kept or refused (item 8), over HTTP/1.1,
//!   HTTP/2 and WebSocket upgrades, through reloads and `dito check`;
//! - `deadline`: `request_timeout` as a hard deadline during a slow upload (item 16);
//! - `ceilings`: the maxima of the request limits and a config at them (item 17).

mod ceilings;
mod chunk_extensions;
mod deadline;
mod te_trailers;
mod underscores;

use std::net::SocketAddr;

use crate::proxy_common::{loc, yaml, Raw};
use crate::support::upstream::{ok, Upstream};
use crate::support::Dito;

/// A scripted upstream answering `200 fine`, and a Dito with `top` keys routing `^/` to it.
fn scripted(top: &str) -> (Upstream, Dito) {
    let up = Upstream::start(|_| ok("fine"));
    let d = Dito::start(&yaml(top, &[loc("^/", &format!("http://{}", up.addr), "")]));
    (up, d)
}

/// Sends a WebSocket upgrade for `path` with `extra` header lines (each ending in CRLF) and
/// returns the response head.
fn upgrade_head(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut c = Raw::connect(addr);
    c.send(upgrade_request(addr, path, extra).as_bytes());
    c.read_until_contains(b"\r\n\r\n");
    c.head_and_rest().0
}

/// A WebSocket upgrade request for `path` with `extra` header lines (each ending in CRLF).
fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}
