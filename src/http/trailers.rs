//! Which fields a forwarded trailer section may carry (spec §3, RFC 9110 §6.5.1), sans IO.
//!
//! A trailer arrives after the content, so a field whose meaning is needed before it — message
//! framing, routing, request modifiers, authentication, response control data, or how to
//! process the content — cannot be honoured there, and a recipient that merges trailers into
//! the header section (many frameworks do) would let such a field smuggle past what Dito
//! checked or set in the head: a `Content-Length` or `Host` that disagrees with the one that
//! framed and routed the message, a second `Authorization`, an `X-Forwarded-For` Dito did not
//! write. Dito drops those fields from every trailer section it forwards, in both directions
//! and for both protocols; everything else (checksums, `grpc-status`, `Server-Timing`) passes.
//! Trailer sections are sourced in two places, both of which filter here: the chunked decoder
//! (HTTP/1.1 request and response bodies) and the HTTP/2 request body reader.

/// Field names (lowercase) a forwarded trailer section never carries, by RFC 9110 §6.5.1's
/// categories, plus the fields Dito itself owns in the head.
pub const FORBIDDEN_IN_TRAILERS: &[&str] = &[
    // Message framing and the connection (hop-by-hop fields never cross a proxy at all).
    "content-length",
    "transfer-encoding",
    "trailer",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "http2-settings",
    // Routing, and the forwarding fields Dito writes itself (spec §3).
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
    // Request modifiers: controls and conditionals.
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    // Authentication and session state.
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    // Response control data.
    "age",
    "date",
    "expires",
    "location",
    "retry-after",
    "vary",
    "warning",
    // How to process the content.
    "content-encoding",
    "content-type",
    "content-range",
];

/// Whether a trailer field named `name` (any case) must not be forwarded.
pub fn forbidden_in_trailer(name: &[u8]) -> bool {
    FORBIDDEN_IN_TRAILERS
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
}

/// Removes the forbidden fields from a raw trailer section (`Name: value\r\n` lines, as the
/// chunked decoder keeps it), in place. Lines without a colon are left to the caller's
/// validation.
pub fn retain_forwardable(section: &mut Vec<u8>) {
    let mut read = 0;
    let mut write = 0;
    while read < section.len() {
        let end = memchr::memchr(b'\n', &section[read..]).map_or(section.len(), |i| read + i + 1);
        let line = &section[read..end];
        let name = memchr::memchr(b':', line).map_or(line, |c| &line[..c]);
        if !forbidden_in_trailer(name.trim_ascii()) {
            if write != read {
                section.copy_within(read..end, write);
            }
            write += end - read;
        }
        read = end;
    }
    section.truncate(write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(raw: &[u8]) -> Vec<u8> {
        let mut v = raw.to_vec();
        retain_forwardable(&mut v);
        v
    }

    #[test]
    fn forbidden_fields_are_dropped_and_the_rest_kept_in_order() {
        assert_eq!(
            filtered(
                b"X-Checksum: abc\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nhost: evil\r\ngrpc-status: 0\r\nAUTHORIZATION: x\r\nSet-Cookie: s=1\r\nServer-Timing: db;dur=3\r\n"
            ),
            b"X-Checksum: abc\r\ngrpc-status: 0\r\nServer-Timing: db;dur=3\r\n"
        );
    }

    #[test]
    fn sections_without_forbidden_fields_are_untouched() {
        assert_eq!(filtered(b""), b"");
        assert_eq!(filtered(b"X-A: 1\r\nX-B: 2\r\n"), b"X-A: 1\r\nX-B: 2\r\n");
        assert_eq!(filtered(b"Content-Type: x\r\n"), b"");
        assert_eq!(filtered(b"X-Last: 1"), b"X-Last: 1");
    }

    #[test]
    fn names_match_whole_and_in_any_case() {
        assert!(forbidden_in_trailer(b"Content-Length"));
        assert!(forbidden_in_trailer(b"X-FORWARDED-FOR"));
        assert!(!forbidden_in_trailer(b"Content-Length-X"));
        assert!(!forbidden_in_trailer(b"X-Host"));
        assert!(!forbidden_in_trailer(b"Digest"));
        for name in FORBIDDEN_IN_TRAILERS {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(forbidden_in_trailer(name.as_bytes()));
        }
    }
}
