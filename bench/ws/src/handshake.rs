//! The opening handshake (RFC 6455 §4): the client's upgrade request, the
//! server's reading of it, the `Sec-WebSocket-Accept` both sides compute, and
//! the client's check of the 101. Heads are parsed with `httparse`.

use data_encoding::BASE64;
use sha1::{Digest, Sha1};

use crate::Rng;

/// RFC 6455 §1.3's GUID, appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The longest request or response head either side reads.
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed per head.
const MAX_HEADERS: usize = 64;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    BASE64.encode(&h.finalize())
}

/// A fresh `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn client_key(rng: &mut Rng) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
    raw[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
    BASE64.encode(&raw)
}

/// The client's upgrade request.
pub fn client_request(host: &str, path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// What the server read.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A WebSocket upgrade with its key; `head_len` bytes of head.
    Upgrade { key: String, head_len: usize },
    /// Anything else (answered with a plain 200, e.g. the harness's readiness GET).
    Plain { head_len: usize },
}

fn has_token(value: &[u8], token: &str) -> bool {
    String::from_utf8_lossy(value)
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The request head at the front of `buf`: `Ok(None)` while incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<Request>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad request head: {e}")),
    };
    let mut upgrade = false;
    let mut key = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") && has_token(h.value, "websocket") {
            upgrade = true;
        } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(String::from_utf8_lossy(h.value).trim().to_string());
        }
    }
    Ok(Some(match (req.method, upgrade, key) {
        (Some("GET"), true, Some(key)) => Request::Upgrade { key, head_len },
        _ => Request::Plain { head_len },
    }))
}

/// The server's 101 for `key`.
pub fn switching_protocols(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    )
}

/// The client's check of the response head at the front of `buf`: its length
/// once complete, an error unless it is a 101 with `Upgrade: websocket` and
/// the right `Sec-WebSocket-Accept`.
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    if resp.code != Some(101) {
        return Err(format!("status {} instead of 101", resp.code.unwrap_or(0)));
    }
    let want = accept_key(key.as_bytes());
    let (mut upgrade, mut accept) = (false, false);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, "websocket");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept |= h.value == want.as_bytes();
        }
    }
    match (upgrade, accept) {
        (true, true) => Ok(Some(head_len)),
        (false, _) => Err("101 without Upgrade: websocket".to_string()),
        (true, false) => Err("101 with a wrong Sec-WebSocket-Accept".to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn request_and_response() {
        let mut rng = Rng::new(7);
        let key = client_key(&mut rng);
        let req = client_request("127.0.0.1:1", "/ws", &key);
        let got = parse_request(req.as_bytes()).unwrap().unwrap();
        assert_eq!(
            got,
            Request::Upgrade {
                key: key.clone(),
                head_len: req.len()
            }
        );
        assert_eq!(parse_request(&req.as_bytes()[..10]), Ok(None));
        let plain = b"GET /bytes/13 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse_request(plain),
            Ok(Some(Request::Plain {
                head_len: plain.len()
            }))
        );
        let resp = switching_protocols(&key);
        assert_eq!(parse_response(resp.as_bytes(), &key), Ok(Some(resp.len())));
        assert!(parse_response(resp.as_bytes(), "other").is_err());
        assert!(parse_response(b"HTTP/1.1 502 Bad Gateway\r\n\r\n", &key).is_err());
    }
}
