//! Request heads: `parse_head` never panics, gives the same answer whether the bytes arrive
//! whole or in two reads and whether the connection's storage is fresh or reused, and a head
//! it accepts builds the same head again through `RequestHead::assemble` (the HTTP/2 path).

use crate::config::{
    MAX_HEADERS_CEILING, MAX_HEADER_BYTES_CEILING, MAX_REQUEST_LINE_BYTES_CEILING,
};
use crate::http::limits::{HeadLimits, HeadersWithUnderscores};
use crate::http::request::{
    parse_head, parse_head_into, request_line, BodyFraming, HeadError, HeadStorage, RequestHead,
    TargetForm, Version,
};

/// The limits a check runs under: the defaults, tiny ones (so short inputs reach every
/// limit), the last header count whose slots fit in the small stack array, one that needs
/// the large one, the smallest and the largest values the config accepts; each underscore
/// policy appears.
pub const LIMIT_SETS: [HeadLimits; 6] = [
    limits(8192, 65_536, 100, HeadersWithUnderscores::Drop),
    limits(32, 64, 3, HeadersWithUnderscores::Reject),
    limits(8192, 65_536, 127, HeadersWithUnderscores::Allow),
    limits(8192, 65_536, 200, HeadersWithUnderscores::Drop),
    limits(1, 1, 1, HeadersWithUnderscores::Allow),
    limits(
        MAX_REQUEST_LINE_BYTES_CEILING,
        MAX_HEADER_BYTES_CEILING,
        MAX_HEADERS_CEILING,
        HeadersWithUnderscores::Reject,
    ),
];

const fn limits(
    line: usize,
    header_bytes: usize,
    headers: usize,
    underscores: HeadersWithUnderscores,
) -> HeadLimits {
    HeadLimits {
        max_request_line_bytes: line,
        max_header_bytes: header_bytes,
        max_headers: headers,
        headers_with_underscores: underscores,
    }
}

/// One of [`LIMIT_SETS`], picked by `selector`.
pub fn limits_for(selector: u8) -> HeadLimits {
    LIMIT_SETS[usize::from(selector) % LIMIT_SETS.len()]
}

/// Everything a parsed head tells the rest of Dito, owned, so two heads can be compared.
#[derive(Debug, PartialEq, Eq)]
pub struct HeadFacts {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub path: Vec<u8>,
    pub query: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub version: Version,
    pub form: TargetForm,
    pub framing: BodyFraming,
    pub expect_continue: bool,
    pub keep_alive: bool,
}

impl HeadFacts {
    pub fn of(h: &RequestHead) -> HeadFacts {
        HeadFacts {
            method: h.method().to_vec(),
            target: h.target().to_vec(),
            path: h.path().to_vec(),
            query: h.query().map(<[u8]>::to_vec),
            host: h.host().map(<[u8]>::to_vec),
            headers: h.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
            version: h.version,
            form: h.form,
            framing: h.framing,
            expect_continue: h.expect_continue,
            keep_alive: h.keep_alive,
        }
    }
}

type Parsed = Result<Option<(HeadFacts, usize)>, HeadError>;

fn parse_facts(buf: &[u8], limits: &HeadLimits) -> Parsed {
    parse_head(buf, limits).map(|o| o.map(|(h, n)| (HeadFacts::of(&h), n)))
}

/// A storage that already held another request's head, as on a keep-alive connection.
fn used_storage() -> HeadStorage {
    let previous = b"POST /previous/request?with=query HTTP/1.1\r\nHost: old.example\r\n\
        Content-Length: 5\r\nX-Old: 1\r\nX-Old: 2\r\n\r\n";
    match parse_head(previous, &LIMIT_SETS[0]) {
        Ok(Some((head, _))) => head.into_storage(),
        other => panic!("the stock request no longer parses: {other:?}"),
    }
}

/// `buf` whole, `buf[..split]` (as a first read), and `buf` again into reused storage.
pub fn check_parse(buf: &[u8], limits: &HeadLimits, split: usize) {
    let whole = parse_facts(buf, limits);
    check_parsed_head(buf, &whole, limits);

    let k = split % (buf.len() + 1);
    let part = parse_facts(&buf[..k], limits);
    match (&whole, &part) {
        (_, Ok(None)) => {
            if let Ok(Some((_, n))) = &whole {
                assert!(k < *n, "the complete head of {n} bytes needed more at {k}");
            }
        }
        (Ok(Some((h, n))), Ok(Some((hp, np)))) => {
            assert_eq!((h, n), (hp, np), "a prefix parsed differently");
        }
        (Err(_), Err(_)) => {}
        (whole, part) => panic!(
            "a first read of {k} bytes gave {part:?}, the whole {} bytes {whole:?}",
            buf.len()
        ),
    }

    let mut storage = used_storage();
    let reused =
        parse_head_into(buf, limits, &mut storage).map(|o| o.map(|(h, n)| (HeadFacts::of(&h), n)));
    assert_eq!(reused, whole, "reused storage changed the result");
}

fn check_parsed_head(buf: &[u8], whole: &Parsed, limits: &HeadLimits) {
    let Ok(Some((h, n))) = whole else {
        let _ = request_line(buf);
        return;
    };
    assert!(*n <= buf.len());
    assert!(h.headers.len() <= limits.max_headers);
    if let Some((m, t, _)) = request_line(buf) {
        assert_eq!((m, t), (&h.method[..], &h.target[..]));
    }
    match h.form {
        TargetForm::Origin => {
            let mut target = h.path.clone();
            if let Some(q) = &h.query {
                target.push(b'?');
                target.extend_from_slice(q);
            }
            assert_eq!(target, h.target, "origin-form target is path?query");
            assert_eq!(h.path.first(), Some(&b'/'));
        }
        TargetForm::Asterisk => assert_eq!(h.method, b"OPTIONS"),
        TargetForm::Authority => assert_eq!(h.method, b"CONNECT"),
        TargetForm::Absolute => assert!(h.host.is_some()),
    }
    if let BodyFraming::Length(len) = h.framing {
        assert!(len > 0);
    }
    if h.version == Version::Http11 {
        assert!(h.host.is_some(), "HTTP/1.1 head without a Host");
    }
    check_reassembled(h);
}

/// An accepted HTTP/1 head, given to the assembler as an HTTP/2 request would be, must be
/// accepted again with the same facts (the Host field standing in for `:authority`).
fn check_reassembled(h: &HeadFacts) {
    let has_host = h
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"host"));
    if !has_host && h.method != b"CONNECT" {
        return; // HTTP/1.0 without Host: the assembler requires one, by design.
    }
    let fields = h.headers.iter().map(|(n, v)| (&n[..], &v[..]));
    let again = RequestHead::assemble(&h.method, &h.target, None, fields, h.version, h.framing);
    let again = match again {
        Ok(head) => HeadFacts::of(&head),
        Err(e) => panic!("the assembler refused an accepted head ({e:?}): {h:?}"),
    };
    assert_eq!(again.method, h.method);
    assert_eq!(again.target, h.target);
    assert_eq!(again.path, h.path);
    assert_eq!(again.query, h.query);
    assert_eq!(again.form, h.form);
    assert_eq!(again.framing, h.framing);
    assert_eq!(again.headers, h.headers);
    if matches!(h.form, TargetForm::Origin | TargetForm::Asterisk) {
        assert_eq!(again.host, h.host);
    }
}

/// The assembler on arbitrary parts: never panics, and what it accepts is consistent.
pub fn check_assemble(
    method: &[u8],
    target: &[u8],
    authority: Option<&[u8]>,
    fields: &[(Vec<u8>, Vec<u8>)],
) {
    let iter = fields.iter().map(|(n, v)| (&n[..], &v[..]));
    let Ok(head) = RequestHead::assemble(
        method,
        target,
        authority,
        iter,
        Version::Http2,
        BodyFraming::None,
    ) else {
        return;
    };
    let h = HeadFacts::of(&head);
    assert_eq!(h.method, method);
    assert_eq!(h.target, target);
    if let Some(a) = authority {
        assert_eq!(h.host.as_deref(), Some(a));
        assert_eq!(head.header("host"), Some(a));
    }
    if h.form == TargetForm::Origin {
        let mut t = h.path.clone();
        if let Some(q) = &h.query {
            t.push(b'?');
            t.extend_from_slice(q);
        }
        assert_eq!(t, target);
    }
}

/// Fuzz entry: byte 0 picks the limits (and, with its high bit, the assembler instead),
/// bytes 1–2 the split point; the rest is the request.
pub fn fuzz_one(data: &[u8]) {
    let [sel, s0, s1, rest @ ..] = data else {
        return;
    };
    if sel & 0x80 != 0 {
        fuzz_assemble(rest);
        return;
    }
    let split = usize::from(u16::from_le_bytes([*s0, *s1]));
    check_parse(rest, &limits_for(*sel), split);
}

/// The assembler's parts from `\0`-separated pieces: method, target, authority (empty = none),
/// then name, value pairs.
fn fuzz_assemble(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let authority = parts.next().filter(|a| !a.is_empty());
    let mut fields = Vec::new();
    while let (Some(n), Some(v)) = (parts.next(), parts.next()) {
        fields.push((n.to_vec(), v.to_vec()));
    }
    check_assemble(method, target, authority, &fields);
}
