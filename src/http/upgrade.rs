//! Which requests are WebSocket upgrades (spec §13), and the fields that carry an upgrade.
//!
//! An upgrade is a GET over HTTP/1.1 whose `Connection` fields name the `upgrade` token and
//! whose `Upgrade` fields name `websocket` (tokens case-insensitive, any field of the name
//! counts), without a body. Anything else — `Upgrade: h2c`, a body, HTTP/1.0, HTTP/2 — is an
//! ordinary request. Pure functions; worker threads.

use super::headers::has_token;
use super::request::{BodyFraming, RequestHead, Version};

/// What Dito writes on an upgrade's way out, in place of the client's hop-by-hop copies.
pub const UPGRADE_FIELDS: &[u8] = b"Connection: upgrade\r\nUpgrade: websocket\r\n";

/// The request asks to switch to the WebSocket protocol.
pub fn is_websocket_upgrade(head: &RequestHead) -> bool {
    head.version == Version::Http11
        && head.is_method("GET")
        && head.framing == BodyFraming::None
        && any_field_has(head.headers(), b"connection", "upgrade")
        && any_field_has(head.headers(), b"upgrade", "websocket")
}

/// Some field called `name` lists `token`.
pub fn any_field_has<'a>(
    mut fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    name: &[u8],
    token: &str,
) -> bool {
    fields.any(|(n, v)| n.eq_ignore_ascii_case(name) && has_token(v, token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::http::limits::HeadLimits;
    use crate::http::request::parse_head;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line_bytes: 8192,
        max_header_bytes: 65536,
        max_headers: 100,
        headers_with_underscores: crate::http::limits::HeadersWithUnderscores::Drop,
    };

    fn upgrade(raw: &str) -> bool {
        let (head, _) = parse_head(raw.as_bytes(), &LIMITS).unwrap().unwrap();
        is_websocket_upgrade(&head)
    }

    #[test]
    fn a_websocket_handshake_is_an_upgrade() {
        assert!(upgrade(
            "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        ));
        // Tokens in lists, any case, spread over several fields.
        assert!(upgrade(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: x, UPGRADE\r\nUpgrade: foo/2, WebSocket\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn anything_else_is_an_ordinary_request() {
        for raw in [
            // h2c is never honoured.
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
            // Both fields are needed.
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n",
            // Not a token match.
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgraded\r\nUpgrade: websockets\r\n\r\n",
            // Other methods, HTTP/1.0, a body.
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(!upgrade(raw), "{raw:?}");
        }
    }
}
