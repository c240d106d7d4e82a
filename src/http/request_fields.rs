//! The header fields of a request head, one at a time: which names stay (the underscore
//! policy of spec §3) and what the fields say about framing, Host and the connection (spec
//! §7's 400 row: duplicate or malformed Content-Length, Transfer-Encoding other than chunked,
//! duplicate or invalid Host). Pure functions; worker threads.

use super::{
    is_valid_authority, span_of, BodyFraming, HeadError, HeadersWithUnderscores, Span, Version,
};

/// Whether a field called `name` stays in the request under `policy` (spec §3): `false`
/// drops it, as if it had never been sent; `Err` refuses the request with 400.
pub fn underscore_allowed(name: &[u8], policy: HeadersWithUnderscores) -> Result<bool, HeadError> {
    if memchr::memchr(b'_', name).is_none() {
        return Ok(true);
    }
    match policy {
        HeadersWithUnderscores::Allow => Ok(true),
        HeadersWithUnderscores::Drop => Ok(false),
        HeadersWithUnderscores::Reject => {
            Err(HeadError::BadRequest("underscore in a header field name"))
        }
    }
}

/// What the header fields say about framing, Host and the connection.
#[derive(Default)]
pub(super) struct HeaderFacts {
    pub(super) content_length: Option<u64>,
    pub(super) chunked: bool,
    pub(super) transfer_encoding_seen: bool,
    pub(super) host: Option<Span>,
    pub(super) host_count: u32,
    pub(super) conn_close: bool,
    pub(super) conn_keep_alive: bool,
    pub(super) expect_continue: bool,
}

impl HeaderFacts {
    pub(super) fn observe(
        &mut self,
        raw: &[u8],
        name: &str,
        value: &[u8],
        version: Version,
    ) -> Result<(), HeadError> {
        let n = name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            if self.content_length.is_some() {
                return Err(HeadError::BadRequest("duplicate Content-Length"));
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            if version == Version::Http10 {
                return Err(HeadError::BadRequest(
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            if self.transfer_encoding_seen || !value.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::BadRequest(
                    "Transfer-Encoding other than chunked",
                ));
            }
            self.transfer_encoding_seen = true;
            self.chunked = true;
        } else if n.eq_ignore_ascii_case(b"host") {
            self.host_count += 1;
            if self.host_count > 1 {
                return Err(HeadError::BadRequest("duplicate Host header"));
            }
            if !is_valid_authority(value) {
                return Err(HeadError::BadRequest("invalid Host header"));
            }
            self.host = Some(span_of(raw, value)?);
        } else if n.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    self.conn_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    self.conn_keep_alive = true;
                }
            }
        } else if n.eq_ignore_ascii_case(b"expect") && value.eq_ignore_ascii_case(b"100-continue") {
            self.expect_continue = true;
        }
        Ok(())
    }

    pub(super) fn framing(&self, _version: Version) -> Result<BodyFraming, HeadError> {
        match (self.chunked, self.content_length) {
            (true, Some(_)) => Err(HeadError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            )),
            (true, None) => Ok(BodyFraming::Chunked),
            (false, Some(0)) | (false, None) => Ok(BodyFraming::None),
            (false, Some(n)) => Ok(BodyFraming::Length(n)),
        }
    }
}

/// Digits only: no sign, no list, no whitespace inside, at most 19 digits (fits u64).
fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    const BAD: HeadError = HeadError::BadRequest("malformed Content-Length");
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    Ok(v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}
