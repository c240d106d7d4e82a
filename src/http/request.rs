//! Strict HTTP/1.x request-head parsing, sans IO.
//!
//! `parse_head` looks at the unconsumed bytes of a connection's read buffer and either asks
//! for more, rejects the request (every framing ambiguity of spec §7's 400 row, 414, 431), or
//! returns an owned [`RequestHead`]: the head bytes copied once, with spans for the method,
//! target, headers, and the facts the session and pipeline need (framing, Host, keep-alive,
//! Expect). Fields whose names contain `_` are dropped here, or refused, as the config says,
//! so nothing after the parser sees them. Runs on a worker thread; touches no IO and no
//! shared state.

use std::mem::MaybeUninit;

use super::limits::{HeadLimits, HeadersWithUnderscores};
use super::span::{slice, span_within, Span};
use crate::config::MAX_HEADERS_CEILING;

/// Why a request head was refused; the session maps each to a status and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed or ambiguous: 400, then close. The text names the cause for the log.
    BadRequest(&'static str),
    /// The request line is longer than `max_request_line_bytes`: 414.
    UriTooLong,
    /// The header section is larger than `max_header_bytes` or has too many fields: 431.
    HeadersTooLarge,
    /// An HTTP/2 connection preface on an HTTP/1 port: 400.
    Http2Preface,
}

/// HTTP version of the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
    /// An HTTP/2 stream (heads built by [`RequestHead::assemble`]).
    Http2,
}

/// How the request body is delimited (spec §3, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n` with n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The form of the request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`
    Origin,
    /// `http://authority/path?query`: the authority becomes the effective Host.
    Absolute,
    /// `*` (only with OPTIONS).
    Asterisk,
    /// `host:port`, CONNECT only; answered 405.
    Authority,
}

/// One header field as spans into [`RequestHead::raw`].
#[derive(Debug, Clone)]
struct HeaderSpan {
    name: Span,
    value: Span,
}

/// The allocations of a request head, kept by a connection between its requests so the
/// steady path allocates nothing.
#[derive(Debug, Default)]
pub struct HeadStorage {
    raw: Vec<u8>,
    headers: Vec<HeaderSpan>,
}

/// A parsed request head that owns a copy of its bytes.
#[derive(Debug, Clone)]
pub struct RequestHead {
    raw: Vec<u8>,
    method: Span,
    target: Span,
    path: Span,
    query: Option<Span>,
    host: Option<Span>,
    headers: Vec<HeaderSpan>,
    pub version: Version,
    pub form: TargetForm,
    pub framing: BodyFraming,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// The client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
}

impl RequestHead {
    pub fn method(&self) -> &[u8] {
        slice(&self.raw, &self.method)
    }

    /// The request-target exactly as the client sent it.
    pub fn target(&self) -> &[u8] {
        slice(&self.raw, &self.target)
    }

    /// The raw path (no query, never decoded); `*` for the asterisk form.
    pub fn path(&self) -> &[u8] {
        slice(&self.raw, &self.path)
    }

    /// The raw query without `?`; `Some(b"")` for a bare `?`.
    pub fn query(&self) -> Option<&[u8]> {
        self.query.as_ref().map(|q| slice(&self.raw, q))
    }

    /// The effective Host: the absolute-form authority, else the Host header.
    pub fn host(&self) -> Option<&[u8]> {
        self.host.as_ref().map(|h| slice(&self.raw, h))
    }

    /// Header fields in received order and case.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|h| (slice(&self.raw, &h.name), slice(&self.raw, &h.value)))
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    pub fn is_method(&self, m: &str) -> bool {
        self.method() == m.as_bytes()
    }

    /// Gives the head's allocations back for the next request of the connection.
    pub fn into_storage(self) -> HeadStorage {
        HeadStorage {
            raw: self.raw,
            headers: self.headers,
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
/// Header slots for the common `max_headers` values (the default is 100).
const FEW_HEADER_SLOTS: usize = 128;
/// Header slots for any `max_headers` the config accepts, plus the one that detects "too
/// many". Also on the stack (about 32 KiB), in a frame of its own that only large
/// `max_headers` values pay for: no request allocates its slots.
const ALL_HEADER_SLOTS: usize = MAX_HEADERS_CEILING + 1;

/// Parses the head at the start of `buf`. `Ok(None)` means more bytes are needed.
pub fn parse_head(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    parse_head_into(buf, limits, &mut HeadStorage::default())
}

/// [`parse_head`] that builds the head in `storage`'s allocations (taken on success).
pub fn parse_head_into(
    buf: &[u8],
    limits: &HeadLimits,
    storage: &mut HeadStorage,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    if is_h2_preface(buf) {
        return Err(HeadError::Http2Preface);
    }
    // Leading empty lines before a request line are ignored (RFC 9112 §2.2), as httparse does.
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line_end = match memchr::memchr(b'\n', &buf[lead..]) {
        Some(i) => lead + i,
        None => {
            // The request line and a CR may be buffered without the LF yet.
            if buf.len() - lead > limits.max_request_line_bytes.saturating_add(1) {
                return Err(HeadError::UriTooLong);
            }
            return Ok(None);
        }
    };
    let line_len = line_end - lead - usize::from(line_end > lead && buf[line_end - 1] == b'\r');
    if line_len > limits.max_request_line_bytes {
        return Err(HeadError::UriTooLong);
    }
    let header_start = line_end + 1;

    // One slot more than allowed, so "too many" is seen; a limit above the ceiling (only code
    // can make one) acts as the ceiling.
    let slots = limits.max_headers.min(MAX_HEADERS_CEILING) + 1;
    if slots <= FEW_HEADER_SLOTS {
        let mut headers =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FEW_HEADER_SLOTS];
        run_httparse(buf, &mut headers[..slots], header_start, limits, storage)
    } else {
        parse_with_all_slots(buf, slots, header_start, limits, storage)
    }
}

/// [`run_httparse`] with up to [`ALL_HEADER_SLOTS`] slots, out of line so the common path's
/// stack frame stays small.
#[inline(never)]
fn parse_with_all_slots(
    buf: &[u8],
    slots: usize,
    header_start: usize,
    limits: &HeadLimits,
    storage: &mut HeadStorage,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; ALL_HEADER_SLOTS];
    let slots = slots.min(ALL_HEADER_SLOTS);
    run_httparse(buf, &mut headers[..slots], header_start, limits, storage)
}

/// The method, target and version of a complete, well-formed request line at the start of
/// `buf`, for observing a request that was refused later in its head (spec §10 counts every
/// request whose request line was parsed).
pub fn request_line(buf: &[u8]) -> Option<(&[u8], &[u8], Version)> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    let end = memchr::memchr(b'\n', rest)?;
    let line = rest[..end].strip_suffix(b"\r")?;
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        _ => return None,
    };
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let visible = |b: &u8| b.is_ascii_graphic();
    (parts.next().is_none()
        && !method.is_empty()
        && method.iter().all(token)
        && !target.is_empty()
        && target.iter().all(visible))
    .then_some((method, target, version))
}

fn is_h2_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(H2_PREFACE.len());
    n >= 4 && buf[..n] == H2_PREFACE[..n] && n == H2_PREFACE.len()
}

fn run_httparse<'b>(
    buf: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    header_start: usize,
    limits: &HeadLimits,
    storage: &mut HeadStorage,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let status =
        httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // The section and the CRLF that ends the head may be buffered in part.
            if buf.len() - header_start > limits.max_header_bytes.saturating_add(2) {
                return Err(HeadError::HeadersTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(e) => return Err(map_httparse_error(buf, e)),
    };
    // The header section without the request line and the final empty line.
    let section = head_len.saturating_sub(header_start);
    if section.saturating_sub(2) > limits.max_header_bytes {
        return Err(HeadError::HeadersTooLarge);
    }
    if req.headers.len() > limits.max_headers.min(MAX_HEADERS_CEILING) {
        return Err(HeadError::HeadersTooLarge);
    }
    let raw_head = &buf[..head_len];
    if has_bare_lf(raw_head) {
        return Err(HeadError::BadRequest("bare LF line ending"));
    }
    let head = build_head(raw_head, &req, limits.headers_with_underscores, storage)?;
    Ok(Some((head, head_len)))
}

fn map_httparse_error(buf: &[u8], e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::Version if buf.starts_with(b"PRI ") => HeadError::Http2Preface,
        httparse::Error::Version => HeadError::BadRequest("invalid HTTP version"),
        httparse::Error::Token => HeadError::BadRequest("invalid method or request-target"),
        httparse::Error::HeaderName => HeadError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => HeadError::BadRequest("invalid byte in header value"),
        httparse::Error::NewLine => HeadError::BadRequest("invalid line ending"),
        _ => HeadError::BadRequest("malformed request head"),
    }
}

/// True when a LF in the head is not preceded by CR (leading empty lines excepted).
fn has_bare_lf(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    memchr::memchr_iter(b'\n', &head[start..]).any(|i| i == 0 || head[start + i - 1] != b'\r')
}

/// The span of a part of the head in `base`. Every part httparse returns for a request is a
/// slice of the buffer it parsed, but a pointer difference is never trusted blindly (see
/// `http::span`): a part from anywhere else is refused instead of becoming a wild offset.
fn span_of(base: &[u8], part: &[u8]) -> Result<Span, HeadError> {
    span_within(base, part).ok_or(HeadError::BadRequest("malformed request head"))
}

fn build_head(
    raw: &[u8],
    req: &httparse::Request<'_, '_>,
    underscores: HeadersWithUnderscores,
    storage: &mut HeadStorage,
) -> Result<RequestHead, HeadError> {
    if raw.len() > u32::MAX as usize {
        return Err(HeadError::HeadersTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequest("incomplete request line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut headers = std::mem::take(&mut storage.headers);
    headers.clear();
    headers.reserve(req.headers.len());
    let mut facts = HeaderFacts::default();
    for h in req.headers.iter() {
        if !underscore_allowed(h.name.as_bytes(), underscores)? {
            continue;
        }
        facts.observe(raw, h.name, h.value, version)?;
        headers.push(HeaderSpan {
            name: span_of(raw, h.name.as_bytes())?,
            value: span_of(raw, h.value)?,
        });
    }
    let framing = facts.framing(version)?;
    let target_bytes = target.as_bytes();
    let (form, path, query, authority) = split_target(method, target_bytes)?;

    let host = match (authority, facts.host) {
        (Some(a), _) => Some(span_of(raw, a)?),
        (None, Some(h)) => Some(h),
        (None, None) if version == Version::Http11 => {
            return Err(HeadError::BadRequest("missing Host header"));
        }
        (None, None) => None,
    };
    let keep_alive = match version {
        Version::Http11 | Version::Http2 => !facts.conn_close,
        Version::Http10 => facts.conn_keep_alive && !facts.conn_close,
    };
    Ok(RequestHead {
        method: span_of(raw, method.as_bytes())?,
        target: span_of(raw, target_bytes)?,
        path: span_of(raw, path)?,
        query: query.map(|q| span_of(raw, q)).transpose()?,
        host,
        headers,
        version,
        form,
        framing,
        expect_continue: facts.expect_continue && version == Version::Http11,
        keep_alive,
        raw: {
            let mut copy = std::mem::take(&mut storage.raw);
            copy.clear();
            copy.extend_from_slice(raw);
            copy
        },
    })
}

type TargetParts<'a> = (TargetForm, &'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);

fn split_target<'a>(method: &str, target: &'a [u8]) -> Result<TargetParts<'a>, HeadError> {
    if method == "CONNECT" {
        return Ok((TargetForm::Authority, target, None, Some(target)));
    }
    if target.contains(&b'#') {
        return Err(HeadError::BadRequest("fragment in request-target"));
    }
    if target == b"*" {
        if method != "OPTIONS" {
            return Err(HeadError::BadRequest(
                "asterisk-form request-target without OPTIONS",
            ));
        }
        return Ok((TargetForm::Asterisk, target, None, None));
    }
    if target.first() == Some(&b'/') {
        let (path, query) = split_query(target);
        return Ok((TargetForm::Origin, path, query, None));
    }
    let rest = strip_prefix_ci(target, b"http://")
        .or_else(|| strip_prefix_ci(target, b"https://"))
        .ok_or(HeadError::BadRequest("invalid request-target"))?;
    let auth_end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    if !is_valid_authority(authority) {
        return Err(HeadError::BadRequest("invalid authority in request-target"));
    }
    let after = &rest[auth_end..];
    let (path, query) = split_query(after);
    // An absolute-form target with an empty path means "/"; `path` then stays empty and the
    // router treats an empty path as "/".
    Ok((TargetForm::Absolute, path, query, Some(authority)))
}

fn split_query(t: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'?', t) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// `uri-host [":" port]` with no userinfo: reg-name characters, an IP literal, a port.
pub fn is_valid_authority(a: &[u8]) -> bool {
    if a.is_empty() {
        return false;
    }
    let (host, port) = if a[0] == b'[' {
        let Some(close) = memchr::memchr(b']', a) else {
            return false;
        };
        let inner = &a[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &a[close + 1..] {
            [] => (inner, None),
            [b':', port @ ..] => (inner, Some(port)),
            _ => return false,
        }
    } else {
        match memchr::memrchr(b':', a) {
            Some(i) => (&a[..i], Some(&a[i + 1..])),
            None => (a, None),
        }
    };
    let host_ok = a[0] == b'['
        || (!host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b)));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

#[path = "request_assemble.rs"]
mod assemble;

#[path = "request_fields.rs"]
mod fields;

pub use fields::underscore_allowed;
use fields::HeaderFacts;

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
