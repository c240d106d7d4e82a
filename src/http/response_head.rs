//! Strict parsing of an upstream's HTTP/1.x response head, sans IO (spec §4).
//!
//! Decides the body framing exactly as RFC 9112 §6.3 does for a proxy that must not be
//! desynchronised: a Transfer-Encoding other than a single `chunked`, Content-Length together
//! with Transfer-Encoding, differing or malformed Content-Lengths, obs-fold, or an oversized
//! head are invalid (502, and the upstream connection is closed). Runs on a worker thread.

use std::mem::MaybeUninit;

use super::span::{slice, span_within, Span};

/// Largest upstream response head accepted.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in an upstream response head.
const MAX_RESPONSE_HEADERS: usize = 256;

/// How an upstream response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// Why an upstream response head is unusable (always `invalid_response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidResponse(pub &'static str);

/// The allocations of a response head, kept with an upstream connection between responses
/// so the steady path allocates nothing.
#[derive(Debug, Default)]
pub struct ResponseStorage {
    raw: Vec<u8>,
    headers: Vec<(Span, Span)>,
}

/// A parsed upstream response head that owns a copy of its bytes.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    raw: Vec<u8>,
    reason: Span,
    headers: Vec<(Span, Span)>,
    pub status: u16,
    /// `HTTP/1.1` (true) or `HTTP/1.0`.
    pub http11: bool,
    pub framing: ResponseFraming,
    /// The upstream lets the connection be reused after this response.
    pub keep_alive: bool,
}

/// The span of a header name or value httparse found in `raw` (always a slice of it).
fn field_span(raw: &[u8], part: &[u8]) -> Result<Span, InvalidResponse> {
    span_within(raw, part).ok_or(InvalidResponse("malformed response head"))
}

/// The reason phrase exactly as sent, read from the status line itself: httparse reports a
/// missing phrase, and one with obs-text (bytes 0x80–0xFF, legal in a reason phrase), as a
/// static `""` that is no part of the buffer. `raw` is a head httparse accepted: optional
/// empty lines, then `HTTP/1.x NNN`, then either the line end or one SP and the phrase (only
/// HTAB, SP, VCHAR and obs-text) up to CR LF or LF.
fn reason_span(raw: &[u8]) -> Span {
    let start = raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(raw.len());
    let line = &raw[start..];
    let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
    let line = &line[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // "HTTP/1.1 200" is 12 bytes; a phrase follows one SP.
    const CODE_END: usize = 12;
    if line.len() <= CODE_END || line[CODE_END] != b' ' {
        return 0..0;
    }
    let from = start + CODE_END + 1;
    let to = start + line.len();
    match (u32::try_from(from), u32::try_from(to)) {
        (Ok(a), Ok(b)) => a..b,
        _ => 0..0,
    }
}

impl ResponseHead {
    /// The reason phrase exactly as the upstream sent it.
    pub fn reason(&self) -> &[u8] {
        slice(&self.raw, &self.reason)
    }

    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|(n, v)| (slice(&self.raw, n), slice(&self.raw, v)))
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    pub fn is_informational(&self) -> bool {
        self.status < 200
    }

    /// Gives the head's allocations back for the next response.
    pub fn into_storage(self) -> ResponseStorage {
        ResponseStorage {
            raw: self.raw,
            headers: self.headers,
        }
    }
}

/// Parses a response head at the start of `buf`; `Ok(None)` needs more bytes.
/// `head_request`: the request was HEAD, so the response has no body whatever it says.
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<(ResponseHead, usize)>, InvalidResponse> {
    parse_response_head_into(buf, head_request, &mut ResponseStorage::default())
}

/// [`parse_response_head`] that builds the head in `storage`'s allocations (taken on success).
pub fn parse_response_head_into(
    buf: &[u8],
    head_request: bool,
    storage: &mut ResponseStorage,
) -> Result<Option<(ResponseHead, usize)>, InvalidResponse> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(InvalidResponse("response head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(InvalidResponse("too many response header fields"))
        }
        Err(_) => return Err(InvalidResponse("malformed response head")),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(InvalidResponse("response head too large"));
    }
    let raw = &buf[..len];
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(InvalidResponse("incomplete status line"));
    };
    if !(100..=999).contains(&code) {
        return Err(InvalidResponse("invalid status code"));
    }
    let mut headers = std::mem::take(&mut storage.headers);
    headers.clear();
    headers.reserve(resp.headers.len());
    let mut content_length: Option<u64> = None;
    let mut te_chunked = false;
    let mut te_seen = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = parse_length(h.value)?;
            if content_length.is_some_and(|c| c != v) {
                return Err(InvalidResponse("two different Content-Lengths"));
            }
            content_length = Some(v);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te_seen || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(InvalidResponse("Transfer-Encoding other than chunked"));
            }
            te_seen = true;
            te_chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                conn_close |= t.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.push((field_span(raw, name)?, field_span(raw, h.value)?));
    }
    if te_chunked && content_length.is_some() {
        return Err(InvalidResponse("both Content-Length and Transfer-Encoding"));
    }
    let http11 = minor == 1;
    let bodiless = head_request || code < 200 || code == 204 || code == 304;
    let framing = if bodiless {
        ResponseFraming::None
    } else if te_chunked {
        ResponseFraming::Chunked
    } else {
        match content_length {
            Some(0) => ResponseFraming::None,
            Some(n) => ResponseFraming::Length(n),
            None => ResponseFraming::Close,
        }
    };
    let keep_alive =
        framing != ResponseFraming::Close && !conn_close && (http11 || conn_keep_alive);
    Ok(Some((
        ResponseHead {
            reason: reason_span(raw),
            headers,
            status: code,
            http11,
            framing,
            keep_alive,
            raw: {
                let mut copy = std::mem::take(&mut storage.raw);
                copy.clear();
                copy.extend_from_slice(raw);
                copy
            },
        },
        len,
    )))
}

fn parse_length(v: &[u8]) -> Result<u64, InvalidResponse> {
    // A list of identical values ("5, 5") is one length (RFC 9110 §8.6).
    let mut out: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let p = part.trim_ascii();
        if p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit) {
            return Err(InvalidResponse("malformed Content-Length"));
        }
        let n = p.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
        if out.is_some_and(|o| o != n) {
            return Err(InvalidResponse("two different Content-Lengths"));
        }
        out = Some(n);
    }
    out.ok_or(InvalidResponse("malformed Content-Length"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ok(s: &[u8], head: bool) -> ResponseHead {
        let (h, n) = parse_response_head(s, head).unwrap().unwrap();
        assert_eq!(n, s.len());
        h
    }

    #[test]
    fn framings() {
        let h = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false);
        assert_eq!(h.framing, ResponseFraming::Length(5));
        assert!(h.keep_alive);
        let h = ok(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, ResponseFraming::Chunked);
        let h = ok(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(h.framing, ResponseFraming::Close);
        assert!(!h.keep_alive);
        let h = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(h.framing, ResponseFraming::None);
        for s in [204u16, 304, 103] {
            let raw = format!("HTTP/1.1 {s} X\r\nContent-Length: 5\r\n\r\n");
            assert_eq!(ok(raw.as_bytes(), false).framing, ResponseFraming::None);
        }
        let h = ok(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!h.keep_alive);
        let h = ok(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
            false,
        );
        assert!(!h.keep_alive);
        let h = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", false);
        assert_eq!(h.framing, ResponseFraming::Length(7));
    }

    #[test]
    fn reason_and_headers_are_kept_raw() {
        let h = ok(
            b"HTTP/1.1 299 Very Custom\r\nX-A: 1\r\nx-b:  2\r\n\r\n",
            false,
        );
        assert_eq!(h.reason(), b"Very Custom");
        let hs: Vec<_> = h.headers().collect();
        assert_eq!(hs, [(&b"X-A"[..], &b"1"[..]), (&b"x-b"[..], &b"2"[..])]);
    }

    #[test]
    fn a_missing_reason_phrase_is_empty() {
        // httparse reports these as a static "" (issue 17: a worker panicked on them).
        for raw in [
            &b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200\nContent-Length: 2\n\n",
            b"\r\nHTTP/1.1 200\r\nContent-Length: 2\r\n\r\n",
        ] {
            let h = ok(raw, false);
            assert_eq!(h.status, 200);
            assert_eq!(h.reason(), b"", "{}", String::from_utf8_lossy(raw));
            assert_eq!(h.framing, ResponseFraming::Length(2));
            assert_eq!(h.header("content-length"), Some(&b"2"[..]));
        }
    }

    #[test]
    fn an_obs_text_reason_phrase_is_kept_as_sent() {
        let h = ok(b"HTTP/1.1 200 \xfc\r\nContent-Length: 2\r\n\r\n", false);
        assert_eq!(h.reason(), b"\xfc");
        assert_eq!(h.header("content-length"), Some(&b"2"[..]));
        let h = ok(b"HTTP/1.0 404 Nicht gef\xc3\xbcnden \t\n\n", false);
        assert_eq!(h.reason(), b"Nicht gef\xc3\xbcnden \t");
        let h = ok(b"\r\n\nHTTP/1.1 299 X\x80Y\r\n\r\n", false);
        assert_eq!(h.reason(), b"X\x80Y");
    }

    #[test]
    fn every_reason_byte_parses_or_is_refused_without_panicking() {
        for b in 0..=255u8 {
            if b >= 0x80 {
                let head = [&b"HTTP/1.1 200 "[..], &[b], b"\r\n\r\n"].concat();
                assert_eq!(ok(&head, false).reason(), [b]);
            }
            for head in [
                [&b"HTTP/1.1 200 "[..], &[b], b"\r\nX: 1\r\n\r\n"].concat(),
                [&b"HTTP/1.1 200"[..], &[b], b"\r\n\r\n"].concat(),
            ] {
                if let Ok(Some((h, _))) = parse_response_head(&head, false) {
                    let reason = h.reason();
                    assert!(reason.is_empty() || reason == [b], "{b:#x}: {reason:?}");
                }
            }
        }
    }

    #[test]
    fn invalid_heads() {
        for s in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"FOO\r\n\r\n",
        ] {
            assert!(
                parse_response_head(s, false).is_err(),
                "{}",
                String::from_utf8_lossy(s)
            );
        }
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n", false),
            Ok(None)
        ));
    }
}
