//! The response head Dito sends for an upstream response (spec §4).
//!
//! Hop-by-hop fields are dropped (with those `Connection` names), framing fields are dropped
//! when the body is re-framed and never relayed on a 1xx or 204 (RFC 9110 §8.6, RFC 9112
//! §6.1), the upstream's `X-Request-ID` is replaced by Dito's, the security headers are added
//! when absent, and `X-Response-Time` is set. Interim (1xx) responses only lose their
//! hop-by-hop and framing fields. Worker thread.

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

/// Decides which response fields are hop-by-hop: the fixed list plus whatever the
/// `Connection` fields name (collected once, without allocating, for up to
/// [`MAX_CONNECTION_FIELDS`] fields; beyond that the head is searched again per name).
struct HopByHop<'a> {
    head: &'a ResponseHead,
    connection_values: [&'a [u8]; MAX_CONNECTION_FIELDS],
    count: usize,
    overflow: bool,
}

const MAX_CONNECTION_FIELDS: usize = 4;

impl<'a> HopByHop<'a> {
    fn of(up: &'a ResponseHead) -> Self {
        let mut hop = HopByHop {
            head: up,
            connection_values: [&[]; MAX_CONNECTION_FIELDS],
            count: 0,
            overflow: false,
        };
        for (_, v) in up
            .headers()
            .filter(|(k, _)| k.eq_ignore_ascii_case(b"connection"))
        {
            if hop.count == MAX_CONNECTION_FIELDS {
                hop.overflow = true;
                break;
            }
            hop.connection_values[hop.count] = v;
            hop.count += 1;
        }
        hop
    }

    fn contains(&self, name: &[u8]) -> bool {
        if HOP_BY_HOP
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            return true;
        }
        if self.count == 0 {
            return false;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        if self.overflow {
            return self
                .head
                .headers()
                .filter(|(k, _)| k.eq_ignore_ascii_case(b"connection"))
                .any(|(_, v)| has_token(v, name));
        }
        self.connection_values[..self.count]
            .iter()
            .any(|v| has_token(v, name))
    }
}

/// Headers for an interim response: the upstream's, less hop-by-hop and framing fields.
pub fn interim_headers(up: &ResponseHead) -> HeaderList {
    let mut out = HeaderList::with_capacity(4, 128);
    let hop = HopByHop::of(up);
    for (n, v) in up.headers() {
        if !hop.contains(n) && !is_framing_field(n) {
            out.push(n, v);
        }
    }
    out
}

/// `Content-Length` or `Transfer-Encoding`.
fn is_framing_field(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
}

/// A status whose responses never carry a framing field: 1xx and 204 (RFC 9110 §8.6, RFC 9112
/// §6.1). A 304 and a response to HEAD may carry them, and keep the upstream's.
fn never_framed(status: u16) -> bool {
    status < 200 || status == 204
}

/// Headers for the final response. Framing fields: a Content-Length body keeps the
/// upstream's field where and as it was sent (one field, even if the upstream repeated it);
/// chunked and close-delimited bodies lose theirs (Dito frames them); responses to HEAD and
/// 304s keep the upstream's fields untouched; 204 (and 101) never carry one.
/// `tls`: the client connection is TLS, so HSTS is added when absent (spec §4).
pub fn final_headers(
    up: &ResponseHead,
    request_id: &str,
    response_time: Duration,
    tls: bool,
) -> HeaderList {
    let mut out = HeaderList::with_capacity(up.headers().count() + 7, 512);
    final_headers_into(up, request_id, response_time, tls, &mut out);
    out
}

/// [`final_headers`] written into `out` (cleared first), reusing its allocations.
pub fn final_headers_into(
    up: &ResponseHead,
    request_id: &str,
    response_time: Duration,
    tls: bool,
    out: &mut HeaderList,
) {
    out.clear();
    let (mut nosniff, mut frame, mut referrer, mut hsts) = (false, false, false, !tls);
    let mut length_written = false;
    let unframed = never_framed(up.status);
    let hop = HopByHop::of(up);
    for (n, v) in up.headers() {
        if hop.contains(n) || n.eq_ignore_ascii_case(b"x-request-id") {
            continue;
        }
        let is_length = n.eq_ignore_ascii_case(b"content-length");
        let is_te = n.eq_ignore_ascii_case(b"transfer-encoding");
        match up.framing {
            ResponseFraming::None if unframed && (is_length || is_te) => continue,
            ResponseFraming::None => {}
            ResponseFraming::Length(len) if is_length => {
                if !length_written {
                    let mut digits = itoa_buf();
                    out.push(n, format_u64(len, &mut digits));
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
        hsts |= n.eq_ignore_ascii_case(b"strict-transport-security");
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
    if !hsts {
        out.push(
            b"Strict-Transport-Security",
            b"max-age=31536000; includeSubDomains",
        );
    }
    out.push(b"X-Request-ID", request_id.as_bytes());
    let mut time = [0u8; 32];
    out.push(b"X-Response-Time", format_millis(response_time, &mut time));
}

/// A buffer for [`format_u64`].
fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `n` in `buf`, without allocating.
pub fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `X-Response-Time` value: milliseconds with 3 decimals and the unit, e.g. `0.431ms`.
fn format_millis(d: Duration, out: &mut [u8; 32]) -> &[u8] {
    let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
    let mut buf = itoa_buf();
    let whole = format_u64(micros / 1000, &mut buf);
    let n = whole.len();
    out[..n].copy_from_slice(whole);
    let frac = micros % 1000;
    out[n] = b'.';
    out[n + 1] = b'0' + (frac / 100) as u8;
    out[n + 2] = b'0' + (frac / 10 % 10) as u8;
    out[n + 3] = b'0' + (frac % 10) as u8;
    out[n + 4] = b'm';
    out[n + 5] = b's';
    &out[..n + 6]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::http::response_head::parse_response_head;

    fn names(hs: &HeaderList) -> Vec<String> {
        hs.iter()
            .map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect()
    }

    fn head(raw: &str, head_request: bool) -> ResponseHead {
        parse_response_head(raw.as_bytes(), head_request)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn no_framing_field_on_204_or_1xx() {
        let t = Duration::ZERO;
        for raw in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
        ] {
            let hs = final_headers(&head(raw, false), "id", t, false);
            let n = names(&hs);
            assert!(n.contains(&"x-a".to_owned()), "{n:?}");
            assert!(!n.contains(&"content-length".to_owned()), "{raw}: {n:?}");
            assert!(!n.contains(&"transfer-encoding".to_owned()), "{raw}: {n:?}");
        }
        for raw in [
            "HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\nLink: </a>\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(names(&interim_headers(&head(raw, false))), ["link"]);
        }
    }

    #[test]
    fn a_304_and_a_head_response_keep_their_length() {
        let t = Duration::ZERO;
        let not_modified = head(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        let hs = final_headers(&not_modified, "id", t, false);
        assert!(hs.iter().any(|f| f == (&b"Content-Length"[..], &b"5"[..])));
        let to_head = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        let hs = final_headers(&to_head, "id", t, false);
        assert!(hs.iter().any(|f| f == (&b"Content-Length"[..], &b"5"[..])));
    }

    #[test]
    fn number_formatting() {
        let mut b = itoa_buf();
        assert_eq!(format_u64(0, &mut b), b"0");
        assert_eq!(format_u64(1_048_576, &mut b), b"1048576");
        assert_eq!(format_u64(u64::MAX, &mut b), b"18446744073709551615");
        let mut t = [0u8; 32];
        assert_eq!(
            format_millis(Duration::from_micros(431), &mut t),
            b"0.431ms"
        );
        assert_eq!(
            format_millis(Duration::from_micros(12_005), &mut t),
            b"12.005ms"
        );
    }
}
