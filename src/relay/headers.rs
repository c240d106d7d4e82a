//! The response head Dito sends for an upstream response (spec §4).
//!
//! Hop-by-hop fields are dropped (with those `Connection` names), framing fields are dropped
//! when the body is re-framed, the upstream's `X-Request-ID` is replaced by Dito's, the
//! security headers are added when absent, and `X-Response-Time` is set. Interim (1xx)
//! responses only lose their hop-by-hop fields. Worker thread.

use std::time::Duration;

use crate::http::headers::{has_token, HeaderList};
use crate::http::response_head::{ResponseFraming, ResponseHead};

/// Response fields that never cross a proxy (lowercase).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "upgrade",
];

fn is_hop_by_hop(up: &ResponseHead, name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        || std::str::from_utf8(name).is_ok_and(|n| {
            up.headers()
                .filter(|(k, _)| k.eq_ignore_ascii_case(b"connection"))
                .any(|(_, v)| has_token(v, n))
        })
}

/// Headers for an interim response: the upstream's, less hop-by-hop fields.
pub fn interim_headers(up: &ResponseHead) -> HeaderList {
    let mut out = HeaderList::with_capacity(4, 128);
    for (n, v) in up.headers() {
        if !is_hop_by_hop(up, n) {
            out.push(n, v);
        }
    }
    out
}

/// Headers for the final response. Framing fields: a Content-Length body keeps the
/// upstream's field where and as it was sent (one field, even if the upstream repeated it);
/// chunked and close-delimited bodies lose theirs (Dito frames them); bodiless responses (HEAD,
/// 204, 304) keep the upstream's fields untouched.
pub fn final_headers(up: &ResponseHead, request_id: &str, response_time: Duration) -> HeaderList {
    let mut out = HeaderList::with_capacity(up.headers().count() + 6, 512);
    let (mut nosniff, mut frame, mut referrer) = (false, false, false);
    let mut length_written = false;
    for (n, v) in up.headers() {
        if is_hop_by_hop(up, n) || n.eq_ignore_ascii_case(b"x-request-id") {
            continue;
        }
        let is_length = n.eq_ignore_ascii_case(b"content-length");
        let is_te = n.eq_ignore_ascii_case(b"transfer-encoding");
        match up.framing {
            ResponseFraming::None => {}
            ResponseFraming::Length(len) if is_length => {
                if !length_written {
                    out.push(n, len.to_string().as_bytes());
                    length_written = true;
                }
                continue;
            }
            _ if is_length || is_te => continue,
            _ => {}
        }
        nosniff |= n.eq_ignore_ascii_case(b"x-content-type-options");
        frame |= n.eq_ignore_ascii_case(b"x-frame-options");
        referrer |= n.eq_ignore_ascii_case(b"referrer-policy");
        out.push(n, v);
    }
    if !nosniff {
        out.push(b"X-Content-Type-Options", b"nosniff");
    }
    if !frame {
        out.push(b"X-Frame-Options", b"DENY");
    }
    if !referrer {
        out.push(b"Referrer-Policy", b"strict-origin-when-cross-origin");
    }
    out.push(b"X-Request-ID", request_id.as_bytes());
    let ms = response_time.as_secs_f64() * 1000.0;
    out.push(b"X-Response-Time", format!("{ms:.3}ms").as_bytes());
    out
}
